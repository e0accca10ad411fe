#version 450
// The texture as is (NEAREST sampler); the pipeline blends by its alpha, so an opaque texel
// replaces the pixel exactly.
layout(set = 0, binding = 0) uniform sampler2D tex;
layout(location = 0) in vec2 uv;
layout(location = 0) out vec4 color;
void main() {
    color = texture(tex, uv);
}
