#version 450
// Mesh vertices are in world space; mvp = projection * view. The fragment shader lights them.
layout(push_constant) uniform Push {
    mat4 mvp;
    vec4 eye;    // camera position (world)
    vec4 params; // x: 1 = show depth, y: near distance, z: far distance (depth shading)
} pc;
layout(location = 0) in vec3 pos;
layout(location = 1) in vec3 nrm;
layout(location = 2) in vec4 col;
layout(location = 0) out vec3 wpos;
layout(location = 1) out vec3 wnrm;
layout(location = 2) out vec3 vcol;
void main() {
    wpos = pos;
    wnrm = nrm;
    vcol = col.rgb;
    gl_Position = pc.mvp * vec4(pos, 1.0);
}
