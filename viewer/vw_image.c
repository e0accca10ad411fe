/* vw_image.c: the image mode (vw_image.h): a static texture handed over on the first frame. */
#include "vw_image.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eng_image.h"

typedef struct image_mode {
    eng_image img; /* RGBA */
    char *params;  /* eng_image_buf_free */
} image_mode;

static int image_frame(void *user, const vw_view *view, vw_frame_out *out, eng_err *err) {
    image_mode *im = user;
    (void)err;
    if (view->frame == 0) { /* the viewer keeps the texture */
        out->rgba = im->img.data;
        out->width = im->img.width;
        out->height = im->img.height;
    }
    snprintf(out->text, sizeof out->text, "%lldx%lld", (long long)im->img.width,
             (long long)im->img.height);
    return ENG_OK;
}

static void image_destroy(void *user) {
    image_mode *im = user;
    if (im == NULL) return;
    eng_image_free(&im->img);
    eng_image_buf_free(im->params);
    free(im);
}

int vw_image_mode_create(vw_mode *out, const char *path, eng_err *err) {
    int rc = ENG_OK;
    image_mode *im = calloc(1, sizeof *im);
    ENG_ASSERT(out != NULL && path != NULL);
    memset(out, 0, sizeof *out);
    if (im == NULL) {
        rc = eng_err_set(err, ENG_E_OOM, "vw_image_mode_create: no memory");
        goto done;
    }
    if ((rc = eng_image_read(&im->img, path, 4, err)) != ENG_OK) goto done;
    /* JPEGs and PNGs without text have no parameters: not an error. */
    if (eng_image_png_text_get(&im->params, path, ENG_IMAGE_TEXT_PARAMETERS, NULL) != ENG_OK)
        im->params = NULL;
    const char *base = strrchr(path, '/');
    base = base != NULL ? base + 1 : path;
    char first[160] = "";
    if (im->params != NULL) {
        size_t n = strcspn(im->params, "\r\n");
        if (n >= sizeof first) n = sizeof first - 1;
        memcpy(first, im->params, n);
        first[n] = '\0';
    }
    snprintf(out->title, sizeof out->title, "%s (%lldx%lld)%s%s", base, (long long)im->img.width,
             (long long)im->img.height, first[0] ? ": " : "", first);
    out->name = "image";
    out->user = im;
    out->width = im->img.width;
    out->height = im->img.height;
    out->up = VW_UP_Y;
    out->frame = image_frame;
    out->destroy = image_destroy;
    im = NULL;
done:
    image_destroy(im);
    return rc;
}

const char *vw_image_mode_parameters(const vw_mode *m) {
    return m != NULL && m->frame == image_frame ? ((const image_mode *)m->user)->params : NULL;
}
