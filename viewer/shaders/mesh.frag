#version 450
// Headlight Lambert plus ambient, two-sided (back faces lit like front faces):
//   colour = vertex colour * (0.25 + 0.75 * |n . l|), l towards the camera.
// Depth view: grey from 1 (near) to 0 (far) by the distance to the camera.
layout(push_constant) uniform Push {
    mat4 mvp;
    vec4 eye;
    vec4 params;
} pc;
layout(location = 0) in vec3 wpos;
layout(location = 1) in vec3 wnrm;
layout(location = 2) in vec3 vcol;
layout(location = 0) out vec4 color;
void main() {
    vec3 to_eye = pc.eye.xyz - wpos;
    if (pc.params.x > 0.5) {
        float t = clamp((length(to_eye) - pc.params.y) / max(pc.params.z - pc.params.y, 1e-20),
                        0.0, 1.0);
        color = vec4(vec3(1.0 - t), 1.0);
        return;
    }
    vec3 l = normalize(to_eye);
    float nl = dot(wnrm, wnrm) > 1e-20 ? abs(dot(normalize(wnrm), l)) : 1.0;
    color = vec4(vcol * (0.25 + 0.75 * nl), 1.0);
}
