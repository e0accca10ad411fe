/* viewer_main.c: the `viewer` command: picks a mode from the file's contents (PNG/JPEG -> image,
 * PLY -> mesh, NeRF snapshot -> NeRF), parses the flags and runs vw_run.
 * Exit status: 0 done, 1 error (file, device, display), 2 bad flags, 3 Vulkan validation
 * messages were reported (with --validate or ENG_VK_VALIDATE=1). */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eng.h"
#include "eng_cuda.h"
#include "vw.h"
#include "vw_image.h"
#include "vw_mesh.h"
#include "vw_nerf.h"

static const char usage[] =
    "usage: viewer [options] FILE\n"
    "\n"
    "Shows a PNG or JPEG (image mode: gen's output, its parameters in the title), a PLY mesh\n"
    "(mesh mode: nerf mesh's output, lit, vertex colours) or a NeRF snapshot (NeRF mode: views\n"
    "rendered by the engine, coarse while the camera moves, refined while it rests) in a\n"
    "Vulkan window, or renders it offscreen with --headless. Live training: nerf train --view.\n"
    "\n"
    "  --headless            no window, no display needed (use with --screenshot)\n"
    "  --screenshot FILE     save the frame as a PNG after --frames frames and exit\n"
    "  --frames N            frames to draw before the screenshot (default 1)\n"
    "  -W, --width W         framebuffer / window width (default: the image's, else 800)\n"
    "  -H, --height H        framebuffer / window height (default: the image's, else 600)\n"
    "  --orbit-deg AZ,EL     camera azimuth and elevation in degrees (default 30,20)\n"
    "  --dist D              camera distance from the centre (default: fit the mesh)\n"
    "  --fov DEG             vertical field of view (default 45)\n"
    "  --up x|y|z            the scene's up axis (default z for nerf meshes and snapshots,\n"
    "                        else y)\n"
    "  --overlay, --no-overlay  the fps / info readout (default: on in a window, off headless)\n"
    "  --gpu N               Vulkan device index (default: discrete > integrated > CPU)\n"
    "  --validate            Vulkan validation layers; any message makes the exit status 3\n"
    "                        (also ENG_VK_VALIDATE=1)\n"
    "  --depth               start in the depth view (mesh and NeRF modes; Tab toggles)\n"
    "  --threads N           CPU threads for NeRF rendering (default: all)\n"
    "  --device cpu|cuda     where NeRF mode renders (default cpu)\n"
    "  --quiet               no information lines on stdout\n"
    "\n"
    "Keys: left drag orbit, right/middle drag pan, scroll zoom, W A S D fly, Q E down / up,\n"
    "R reset the camera, Tab colour / depth, Space pause / resume, F12 or P screenshot\n"
    "(viewer-NNNN.png), Esc or Ctrl+Q quit.\n";

typedef enum { FILE_UNKNOWN, FILE_IMAGE, FILE_PLY, FILE_SAFETENSORS } file_kind;

/* The kind from the first bytes. Returns -1 (message printed) when the file cannot be read. */
static int sniff(file_kind *kind, const char *path) {
    unsigned char b[16] = {0};
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "viewer: cannot open %s: %s\n", path, strerror(errno));
        return -1;
    }
    const size_t n = fread(b, 1, sizeof b, f);
    fclose(f);
    *kind = FILE_UNKNOWN;
    if (n >= 8 && memcmp(b, "\x89PNG\r\n\x1a\n", 8) == 0) *kind = FILE_IMAGE;
    if (n >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF) *kind = FILE_IMAGE;
    if (n >= 4 && memcmp(b, "ply", 3) == 0 && (b[3] == '\n' || b[3] == '\r')) *kind = FILE_PLY;
    /* safetensors: a little-endian u64 header length, then '{' */
    if (n >= 9 && b[8] == '{' && b[7] == 0 && b[6] == 0) *kind = FILE_SAFETENSORS;
    return 0;
}

static int parse_orbit(float *az, float *el, const char *s) {
    char *e = NULL;
    const double a = strtod(s, &e);
    if (e == s || *e != ',') return -1;
    const char *s2 = e + 1;
    const double b = strtod(s2, &e);
    if (e == s2 || *e != '\0' || !(a > -1e6 && a < 1e6) || !(b >= -89.9 && b <= 89.9)) return -1;
    *az = (float)a;
    *el = (float)b;
    return 0;
}

int main(int argc, char **argv) {
    int rc = eng_cli_common(argc, argv, "viewer", usage, eng_cuda_attach);
    if (rc >= 0) return rc;
    vw_params p;
    vw_params_init(&p);
    int64_t frames = 1, width = 0, height = 0, gpu = -1, threads = 0;
    double dist = 0, fov = 45;
    int headless = 0, validate = 0, ov_on = 0, ov_off = 0, quiet = 0, depth = 0;
    const char *shot = NULL, *orbit = NULL, *up = NULL, *device = "cpu";
    const char *pos[1] = {NULL};
    int n_pos = 0;
    const eng_cli_opt opts[] = {
        {"--headless", NULL, ENG_CLI_FLAG, &headless, 0, 0},
        {"--screenshot", NULL, ENG_CLI_STR, &shot, 0, 0},
        {"--frames", NULL, ENG_CLI_INT, &frames, 1, 1e6},
        {"-W", "--width", ENG_CLI_INT, &width, 1, 16384},
        {"-H", "--height", ENG_CLI_INT, &height, 1, 16384},
        {"--orbit-deg", NULL, ENG_CLI_STR, &orbit, 0, 0},
        {"--dist", NULL, ENG_CLI_FLOAT, &dist, 1e-6, 1e9},
        {"--fov", NULL, ENG_CLI_FLOAT, &fov, 1, 170},
        {"--up", NULL, ENG_CLI_STR, &up, 0, 0},
        {"--overlay", NULL, ENG_CLI_FLAG, &ov_on, 0, 0},
        {"--no-overlay", NULL, ENG_CLI_FLAG, &ov_off, 0, 0},
        {"--gpu", NULL, ENG_CLI_INT, &gpu, 0, 64},
        {"--validate", NULL, ENG_CLI_FLAG, &validate, 0, 0},
        {"--quiet", NULL, ENG_CLI_FLAG, &quiet, 0, 0},
        {"--depth", NULL, ENG_CLI_FLAG, &depth, 0, 0},
        {"--threads", NULL, ENG_CLI_INT, &threads, 1, 1024},
        {"--device", NULL, ENG_CLI_STR, &device, 0, 0},
    };
    eng_err err = {0};
    rc = eng_cli_parse(argc, argv, opts, (int)(sizeof opts / sizeof opts[0]), pos, 1, &n_pos, &err);
    if (rc == 1) {
        fputs(usage, stdout);
        return 0;
    }
    if (rc != ENG_OK) {
        fprintf(stderr, "viewer: %s (viewer --help)\n", err.msg);
        return 2;
    }
    if (strcmp(device, "cpu") != 0 && strcmp(device, "cuda") != 0) {
        fprintf(stderr, "viewer: --device %s: expected cpu or cuda\n", device);
        return 2;
    }
    if (n_pos != 1) {
        fprintf(stderr, "viewer: expected one FILE (viewer --help)\n");
        return 2;
    }
    if (orbit != NULL && parse_orbit(&p.az_deg, &p.el_deg, orbit) != 0) {
        fprintf(stderr, "viewer: --orbit-deg \"%s\": expected AZ,EL in degrees, |EL| < 90\n",
                orbit);
        return 2;
    }
    int up_axis = -1;
    if (up != NULL) {
        if (strcmp(up, "x") == 0) {
            up_axis = VW_UP_X;
        } else if (strcmp(up, "y") == 0) {
            up_axis = VW_UP_Y;
        } else if (strcmp(up, "z") == 0) {
            up_axis = VW_UP_Z;
        } else {
            fprintf(stderr, "viewer: --up \"%s\": expected x, y or z\n", up);
            return 2;
        }
    }
    if (ov_on && ov_off) {
        fprintf(stderr, "viewer: --overlay and --no-overlay together\n");
        return 2;
    }
    const char *env = getenv("ENG_VK_VALIDATE");
    p.validate = validate || (env != NULL && strcmp(env, "") != 0 && strcmp(env, "0") != 0);
    p.headless = headless;
    p.screenshot = shot;
    p.frames = frames;
    p.width = width;
    p.height = height;
    p.dist = (float)dist;
    p.fovy_deg = (float)fov;
    p.gpu = (int)gpu;
    p.overlay = ov_on ? 1 : ov_off ? 0 : -1;
    p.quiet = quiet;
    p.depth = depth;
    const char *path = pos[0];

    file_kind kind;
    if (sniff(&kind, path) != 0) return 1;
    vw_mode mode;
    memset(&mode, 0, sizeof mode);
    eng_ctx *ctx = NULL; /* NeRF mode's engine */
    switch (kind) {
    case FILE_IMAGE: rc = vw_image_mode_create(&mode, path, &err); break;
    case FILE_PLY: rc = vw_mesh_mode_create(&mode, path, up_axis, &err); break;
    case FILE_SAFETENSORS:
        if (vw_nerf_is_snapshot(path)) {
            /* NeRF mode: frames rendered by the engine; progressive in an interactive window,
             * the whole view at full resolution per frame for a screenshot. */
            eng_ctx_params cp;
            eng_ctx_params_init(&cp);
            cp.threads = (int)threads;
            const int cuda = strcmp(device, "cuda") == 0;
            rc = eng_ctx_create(&ctx, &cp, &err);
            if (rc == ENG_OK && cuda) rc = eng_cuda_attach(ctx, 0, 0, &err);
            if (rc == ENG_OK)
                rc = vw_nerf_snapshot_mode_create(
                    &mode, ctx, path, cuda ? ENG_DEVICE_CUDA : ENG_DEVICE_CPU, shot == NULL, &err);
            if (rc == ENG_OK && up_axis >= 0) mode.up = (vw_up)up_axis;
        } else {
            rc = eng_err_set(&err, ENG_E_FORMAT,
                             "%s: a safetensors file but not a NeRF snapshot (no metadata "
                             "format \"engine-nerf-1\")",
                             path);
        }
        break;
    default:
        rc = eng_err_set(&err, ENG_E_FORMAT,
                         "%s: not a PNG, JPEG, PLY or NeRF snapshot (unknown first bytes)", path);
    }
    if (rc != ENG_OK) {
        fprintf(stderr, "viewer: %s\n", err.msg);
        eng_ctx_destroy(ctx);
        return 1;
    }
    const char *params = vw_image_mode_parameters(&mode);
    if (params != NULL && p.headless && !p.quiet) printf("parameters: %s\n", params);

    vw_stats stats;
    rc = vw_run(&p, &mode, &stats, &err);
    vw_mode_destroy(&mode);
    eng_ctx_destroy(ctx);
    if (rc != ENG_OK) fprintf(stderr, "viewer: %s\n", err.msg);
    if (stats.validation_messages > 0) {
        fprintf(stderr, "viewer: %lld Vulkan validation messages\n",
                (long long)stats.validation_messages);
        return 3;
    }
    return rc != ENG_OK ? 1 : 0;
}
