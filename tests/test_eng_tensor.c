/* test_eng_tensor.c: tensor descriptors, allocation through the allocator, views. */
#include "eng.h"
#include "eng_test.h"

static int test_init_strides(void) {
    eng_err err = {0};
    eng_tensor t;
    const int64_t shape[4] = {2, 3, 5, 7};
    CHECK_OK(eng_tensor_init(&t, NULL, ENG_DTYPE_F16, ENG_DEVICE_CPU, 4, shape, &err), &err);
    CHECK_EQ_I64(t.stride[3], 1);
    CHECK_EQ_I64(t.stride[2], 7);
    CHECK_EQ_I64(t.stride[1], 35);
    CHECK_EQ_I64(t.stride[0], 105);
    CHECK_EQ_I64(eng_tensor_numel(&t), 210);
    CHECK_EQ_I64(eng_tensor_nbytes(&t), 420);
    CHECK(eng_tensor_is_contiguous(&t));
    /* a scalar has one element */
    CHECK_OK(eng_tensor_init(&t, NULL, ENG_DTYPE_F32, ENG_DEVICE_CPU, 0, NULL, &err), &err);
    CHECK_EQ_I64(eng_tensor_numel(&t), 1);
    return 0;
}

static int test_init_errors(void) {
    eng_err err = {0};
    eng_tensor t;
    const int64_t neg[2] = {4, -1}, big[4] = {1 << 20, 1 << 20, 1 << 20, 1};
    const int64_t five[5] = {1, 1, 1, 1, 1};
    CHECK(eng_tensor_init(&t, NULL, ENG_DTYPE_F32, ENG_DEVICE_CPU, 2, neg, &err) ==
          ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "dimension 1 is -1");
    CHECK(eng_tensor_init(&t, NULL, ENG_DTYPE_F32, ENG_DEVICE_CPU, 4, big, &err) ==
          ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "2^48");
    CHECK(eng_tensor_init(&t, NULL, ENG_DTYPE_F32, ENG_DEVICE_CPU, 5, five, &err) ==
          ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "5 dimensions");
    CHECK(eng_tensor_init(&t, NULL, ENG_DTYPE_COUNT, ENG_DEVICE_CPU, 1, five, &err) ==
          ENG_E_INVALID_ARG);
    return 0;
}

static int test_views(void) {
    eng_err err = {0};
    float data[2 * 3 * 4];
    eng_tensor t, rows, col, r, p;
    const int64_t shape[3] = {2, 3, 4}, flat[2] = {6, 4}, wrong[1] = {23};
    const int perm[3] = {2, 0, 1};
    for (int i = 0; i < 24; i++)
        data[i] = (float)i;
    CHECK_OK(eng_tensor_init(&t, data, ENG_DTYPE_F32, ENG_DEVICE_CPU, 3, shape, &err), &err);
    CHECK_OK(eng_tensor_view_rows(&rows, &t, 1, 1, &err), &err);
    CHECK(((float *)rows.data)[0] == 12.0f);
    CHECK_EQ_I64(rows.shape[0], 1);
    /* column 2 of every row: non-contiguous */
    CHECK_OK(eng_tensor_view_slice(&col, &t, 2, 2, 1, &err), &err);
    CHECK(!eng_tensor_is_contiguous(&col));
    CHECK(*(float *)((char *)col.data + eng_tensor_offset(&col, 1, 2, 0, 0)) == 22.0f);
    CHECK(eng_tensor_view_slice(&col, &t, 1, 2, 2, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "[2, 4) is outside dimension 1 of size 3");
    CHECK(eng_tensor_view_reshape(&r, &col, 2, flat, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "not contiguous");
    CHECK_OK(eng_tensor_view_reshape(&r, &t, 2, flat, &err), &err);
    CHECK_EQ_I64(r.shape[0], 6);
    CHECK(eng_tensor_view_reshape(&r, &t, 1, wrong, &err) == ENG_E_INVALID_ARG);
    CHECK_CONTAINS(err.msg, "24 elements");
    CHECK_OK(eng_tensor_view_permute(&p, &t, perm, &err), &err);
    CHECK_EQ_I64(p.shape[0], 4);
    CHECK_EQ_I64(p.shape[1], 2);
    CHECK_EQ_I64(p.shape[2], 3);
    /* p[3][1][2] == t[1][2][3] */
    CHECK(*(float *)((char *)p.data + eng_tensor_offset(&p, 3, 1, 2, 0)) == 23.0f);
    const int bad[3] = {0, 0, 1};
    CHECK(eng_tensor_view_permute(&p, &t, bad, &err) == ENG_E_INVALID_ARG);
    return 0;
}

static int test_alloc_and_scratch(void) {
    eng_err err = {0};
    eng_alloc_params ap;
    eng_alloc *a = NULL;
    eng_alloc_stats st;
    eng_tensor w, s1, s2;
    const int64_t shape[2] = {77, 768};
    char desc[64];
    eng_alloc_params_init(&ap);
    CHECK_OK(eng_alloc_create(&a, &ap, &err), &err);
    CHECK_OK(eng_tensor_alloc(&w, a, ENG_LIFE_WEIGHTS, "clip", ENG_DTYPE_F16, 2, shape, &err),
             &err);
    CHECK(w.data != NULL);
    CHECK(strcmp(eng_tensor_describe(&w, desc, sizeof desc), "f16[77,768] cpu") == 0);
    eng_alloc_get_stats(a, &st);
    CHECK(st.in_use[ENG_LIFE_WEIGHTS] >= 77 * 768 * 2);
    CHECK_OK(eng_tensor_scratch(&s1, eng_alloc_scratch(a), ENG_DTYPE_F32, 2, shape, &err), &err);
    eng_alloc_scratch_reset(a);
    CHECK_OK(eng_tensor_scratch(&s2, eng_alloc_scratch(a), ENG_DTYPE_F32, 2, shape, &err), &err);
    CHECK(s1.data == s2.data); /* same takes after a reset: same addresses */
    eng_tensor_free(a, &w);
    CHECK(w.data == NULL);
    eng_alloc_get_stats(a, &st);
    CHECK_EQ_I64(st.in_use[ENG_LIFE_WEIGHTS], 0);
    eng_alloc_destroy(a);
    return 0;
}

int main(int argc, char **argv) {
    static const eng_test_case cases[] = {
        {"init_strides", test_init_strides},
        {"init_errors", test_init_errors},
        {"views", test_views},
        {"alloc_and_scratch", test_alloc_and_scratch},
    };
    return eng_test_main(argc, argv, cases, ENG_TEST_N(cases));
}
