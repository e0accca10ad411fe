/* gen_weights.c: `gen info MODEL` (what wt_model_open detected) and `gen make-checkpoint`
 * (random checkpoints through wt_make_checkpoint). */
#include "gen_weights.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tok.h"
#include "wt.h"

static const char info_usage[] =
    "usage: gen info MODEL\n"
    "  MODEL: an ldm .safetensors file or a diffusers folder (model_index.json). Prints the\n"
    "  format, the family, the files and, per component, tensors, parameters, dtypes and the\n"
    "  architecture read off the tensors. Pickle checkpoints (.ckpt) are refused.\n";

static const char make_usage[] =
    "usage: gen make-checkpoint --arch sd15|sd21|tiny|tiny-sd2 --format ldm|diffusers\n"
    "                           --dtype f16|f32|bf16 [--seed N] [--vocab PATH] -o PATH\n"
    "  Writes a checkpoint of the real architecture with random weights (Philox, N(0, 0.02)\n"
    "  weights, unit norms, zero biases) in exactly the real format: ldm one .safetensors file,\n"
    "  diffusers a folder with configs, the tokenizer files (from --vocab's folder, else the\n"
    "  default CLIP vocabulary's; skipped with a warning when absent) and the weights.\n"
    "  tiny and tiny-sd2 are test sizes of the SD 1.x and SD 2.x families (tiny-sd2: linear\n"
    "  proj_in/out, OpenCLIP text with GELU, v_prediction).\n"
    "  sd15 in f16 is about 2 GB and needs as much memory while it is written.\n";

static void print_ints(const char *label, const int *v, int n) {
    printf(" %s ", label);
    for (int i = 0; i < n; i++)
        printf("%s%d", i ? "," : "", v[i]);
}

int gen_info_main(int argc, char **argv) {
    if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        fputs(info_usage, stdout);
        return 0;
    }
    if (argc != 2) {
        fputs(info_usage, stderr);
        return 2;
    }
    eng_err err = {0};
    wt_model *m = NULL;
    if (wt_model_open(&m, argv[1], &err) != ENG_OK) {
        fprintf(stderr, "gen info: %s\n", err.msg);
        return 1;
    }
    const wt_sd_config *c = wt_model_config(m);
    const wt_plan *p = wt_model_plan(m);
    printf("model      %s\n", argv[1]);
    printf("format     %s\n", wt_format_name(wt_model_format(m)));
    printf("family     %s\n", wt_family_name(c->family));
    printf("prediction %s%s\n", c->prediction_type,
           wt_model_format(m) == WT_FORMAT_LDM ? " (not stored in ldm files: the default)" : "");
    int64_t total = 0;
    for (int k = 0; k < WT_COMPONENT_COUNT; k++) {
        const wt_component comp = (wt_component)k;
        int64_t tensors = 0;
        int dtypes[ENG_SAFETENSORS_DTYPE_COUNT] = {0};
        for (int64_t i = 0; i < wt_plan_count(p); i++) {
            const wt_plan_entry *e = wt_plan_at(p, i);
            if (e->component != comp || e->name == NULL) continue;
            wt_tensor_info info;
            if (wt_model_tensor(m, e->name, &info, &err) == ENG_OK) dtypes[info.file->dtype] = 1;
            tensors++;
        }
        const int64_t params = wt_plan_params(p, comp);
        total += params;
        printf("%-12s %lld tensors, %lld parameters (%.2f M), dtypes", wt_component_name(comp),
               (long long)tensors, (long long)params, (double)params / 1e6);
        for (int d = 0; d < ENG_SAFETENSORS_DTYPE_COUNT; d++)
            if (dtypes[d]) printf(" %s", eng_safetensors_dtype_name((eng_safetensors_dtype)d));
        printf("\n  file %s\n ", wt_model_file(m, comp));
        if (comp == WT_UNET) {
            const wt_unet_config *u = &c->unet;
            print_ints("block_out_channels", u->block_out, u->n_levels);
            print_ints("attention", u->attn, u->n_levels);
            print_ints("heads", u->heads, u->n_levels);
            printf(" layers_per_block %d context_dim %d proj %s in %d out %d time_embed %d\n",
                   u->layers_per_block, u->context_dim, u->linear_proj ? "linear" : "conv",
                   u->in_channels, u->out_channels, u->time_embed_dim);
        } else if (comp == WT_VAE) {
            const wt_vae_config *v = &c->vae;
            print_ints("block_out_channels", v->block_out, v->n_levels);
            printf(" layers_per_block %d latent_channels %d in %d out %d\n", v->layers_per_block,
                   v->latent_channels, v->in_channels, v->out_channels);
        } else {
            const wt_text_config *t = &c->text;
            printf(" %s hidden %d layers %d", t->kind == WT_TEXT_OPENCLIP ? "openclip" : "clip",
                   t->hidden, t->layers);
            if (t->file_layers != t->layers) printf(" (%d in the file)", t->file_layers);
            printf(" heads %d intermediate %d vocab %d max_positions %d act %s\n", t->heads,
                   t->intermediate, t->vocab, t->max_positions,
                   t->quick_gelu ? "quick_gelu" : "gelu");
        }
    }
    printf("total      %lld parameters (%.2f M)\n", (long long)total, (double)total / 1e6);
    wt_model_close(m);
    return 0;
}

/* The folder holding vocab.json + merges.txt next to the CLIP vocabulary gen tokenize uses. */
static const char *find_tokenizer_dir(char *out, size_t cap, const char *flag) {
    eng_err err = {0};
    char found[4096], probe[4200];
#ifdef GEN_DATA_DIR
    const char *builtin = GEN_DATA_DIR;
#else
    const char *builtin = NULL;
#endif
    if (tok_clip_find_vocab(found, sizeof found, flag, builtin, &err) != ENG_OK) {
        fprintf(stderr,
                "gen make-checkpoint: warning: no CLIP vocabulary (%s); tokenizer/ is "
                "not written\n",
                err.msg);
        return NULL;
    }
    snprintf(probe, sizeof probe, "%s/vocab.json", found);
    FILE *f = fopen(probe, "rb");
    if (f == NULL) { /* a file: use its folder */
        char *slash = strrchr(found, '/');
        if (slash != NULL)
            *slash = '\0';
        else
            snprintf(found, sizeof found, ".");
        snprintf(probe, sizeof probe, "%s/vocab.json", found);
        f = fopen(probe, "rb");
    }
    if (f == NULL) {
        fprintf(stderr,
                "gen make-checkpoint: warning: no vocab.json + merges.txt in %s; "
                "tokenizer/ is not written\n",
                found);
        return NULL;
    }
    fclose(f);
    snprintf(out, cap, "%s", found);
    return out;
}

int gen_make_checkpoint_main(int argc, char **argv) {
    const char *arch = NULL, *format = NULL, *dtype = "f16", *out = NULL, *vocab = NULL;
    uint64_t seed = 0;
    eng_err err = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(make_usage, stdout);
            return 0;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "gen make-checkpoint: %s needs a value\n%s", a, make_usage);
            return 2;
        }
        const char *v = argv[++i];
        if (strcmp(a, "--arch") == 0) {
            arch = v;
        } else if (strcmp(a, "--format") == 0) {
            format = v;
        } else if (strcmp(a, "--dtype") == 0) {
            dtype = v;
        } else if (strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0) {
            out = v;
        } else if (strcmp(a, "--vocab") == 0) {
            vocab = v;
        } else if (strcmp(a, "--seed") == 0) {
            char *end = NULL;
            seed = strtoull(v, &end, 0);
            if (end == v || *end != '\0') {
                fprintf(stderr, "gen make-checkpoint: --seed \"%s\" is not a number\n", v);
                return 2;
            }
        } else {
            fprintf(stderr, "gen make-checkpoint: unknown option %s\n%s", a, make_usage);
            return 2;
        }
    }
    if (arch == NULL || format == NULL || out == NULL) {
        fprintf(stderr, "gen make-checkpoint: --arch, --format and -o are required\n%s",
                make_usage);
        return 2;
    }
    wt_make_params p = {0};
    if (wt_sd_config_preset(&p.config, arch, &err) != ENG_OK) {
        fprintf(stderr, "gen make-checkpoint: %s\n", err.msg);
        return 2;
    }
    if (strcmp(format, "ldm") == 0) {
        p.format = WT_FORMAT_LDM;
    } else if (strcmp(format, "diffusers") == 0) {
        p.format = WT_FORMAT_DIFFUSERS;
    } else {
        fprintf(stderr, "gen make-checkpoint: --format \"%s\": expected ldm or diffusers\n",
                format);
        return 2;
    }
    if (eng_dtype_parse(&p.dtype, dtype, &err) != ENG_OK ||
        (p.dtype != ENG_DTYPE_F16 && p.dtype != ENG_DTYPE_F32 && p.dtype != ENG_DTYPE_BF16)) {
        fprintf(stderr, "gen make-checkpoint: --dtype \"%s\": expected f16, f32 or bf16\n", dtype);
        return 2;
    }
    char tokdir[4096];
    p.seed = seed;
    p.path = out;
    p.progress = stderr;
    if (p.format == WT_FORMAT_DIFFUSERS)
        p.tokenizer_dir = find_tokenizer_dir(tokdir, sizeof tokdir, vocab);
    if (wt_make_checkpoint(&p, &err) != ENG_OK) {
        fprintf(stderr, "gen make-checkpoint: %s\n", err.msg);
        return 1;
    }
    printf("wrote %s (%s, %s, %s, seed %llu)\n", out, arch, format, dtype,
           (unsigned long long)seed);
    return 0;
}
