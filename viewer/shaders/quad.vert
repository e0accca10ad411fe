#version 450
// A textured rectangle: four vertices of a triangle strip made from gl_VertexIndex, placed at
// rect (x0, y0, x1, y1) in normalized device coordinates (Vulkan: y down). uv (0, 0) is the
// texture's top-left corner.
layout(push_constant) uniform Push {
    vec4 rect;
} pc;
layout(location = 0) out vec2 uv;
void main() {
    vec2 t = vec2(float(gl_VertexIndex & 1), float(gl_VertexIndex >> 1));
    uv = t;
    gl_Position = vec4(mix(pc.rect.xy, pc.rect.zw, t), 0.0, 1.0);
}
