// One instruction set's elementwise kernels; Elementwise.c includes this once per set with
// EW_W (floats per vector) and EW_SUFFIX defined, inside a target("...") attribute region.
// Written with clang vector extensions so the same source becomes SSE2, AVX2 or AVX-512 code.
#define EW_CAT2(a, b) a##b
#define EW_CAT(a, b) EW_CAT2(a, b)
#define VF EW_CAT(ew_vf, EW_SUFFIX)
#define VI EW_CAT(ew_vi, EW_SUFFIX)
#define F(name) EW_CAT(name, EW_SUFFIX)

typedef float VF __attribute__((ext_vector_type(EW_W), aligned(4)));
typedef int VI __attribute__((ext_vector_type(EW_W), aligned(4)));

static inline __attribute__((always_inline)) VF F(splat)(float v) { return (VF)(v); }
static inline __attribute__((always_inline)) VF F(sel)(VI m, VF a, VF b) { return (VF)((m & (VI)a) | (~m & (VI)b)); }
static inline __attribute__((always_inline)) VF F(load)(const float *p) { VF v; __builtin_memcpy(&v, p, sizeof v); return v; }
static inline __attribute__((always_inline)) void F(store)(float *p, VF v) { __builtin_memcpy(p, &v, sizeof v); }

// exp(x): x = n ln2 + r with |r| <= ln2/2, a degree-6 polynomial for e^r (Cephes expf
// coefficients), 2^n through the exponent bits. Results below FLT_MIN are flushed to 0,
// above FLT_MAX are +inf, NaN stays NaN.
static inline __attribute__((always_inline)) VF F(exp)(VF x) {
    VF c = __builtin_elementwise_min(__builtin_elementwise_max(x, F(splat)(-87.33654f)), F(splat)(88.7228f));
    VF n = __builtin_elementwise_floor(c * 1.44269504088896341f + 0.5f);
    VF r = c - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    VF p = F(splat)(1.9875691500E-4f);
    p = p * r + 1.3981999507E-3f;
    p = p * r + 8.3334519073E-3f;
    p = p * r + 4.1665795894E-2f;
    p = p * r + 1.6666665459E-1f;
    p = p * r + 5.0000001201E-1f;
    VF y = p * (r * r) + r + 1.0f;
    // n reaches 128 just below ln(FLT_MAX): scale by 2^(n-1) and then by 2 there.
    VI ni = __builtin_convertvector(n, VI);
    VI top = ni > 127;
    VI e = (ni + top + 127) << 23;
    y = y * (VF)e;
    y = F(sel)(top, y + y, y);
    y = F(sel)(x < -87.33654f, F(splat)(0.0f), y);
    y = F(sel)(x > 88.7228f, F(splat)(__builtin_inff()), y);
    return F(sel)(x != x, x, y);
}

static inline __attribute__((always_inline)) VF F(sigmoid)(VF x) { return 1.0f / (1.0f + F(exp)(-x)); }

// tanh: an odd polynomial for |x| < 0.625 (Cephes tanhf), 1 - 2 / (e^{2|x|} + 1) beyond.
static inline __attribute__((always_inline)) VF F(tanh)(VF x) {
    VF ax = __builtin_elementwise_abs(x);
    VF z = x * x;
    VF p = F(splat)(-5.70498872745E-3f);
    p = p * z + 2.06390887954E-2f;
    p = p * z - 5.37397155531E-2f;
    p = p * z + 1.33314422036E-1f;
    p = p * z - 3.33332819422E-1f;
    VF small = p * z * x + x;
    VF big = 1.0f - 2.0f / (F(exp)(ax + ax) + 1.0f);
    big = F(sel)(x < 0.0f, -big, big);
    return F(sel)(ax < 0.625f, small, big);
}

// erf: an odd/even rational approximation on [-4, 4] (beyond, erf is +-1 in float).
static inline __attribute__((always_inline)) VF F(erf)(VF a) {
    VF x = __builtin_elementwise_min(__builtin_elementwise_max(a, F(splat)(-4.0f)), F(splat)(4.0f));
    VF x2 = x * x;
    VF p = x2 * -2.72614225801306e-10f + 2.77068142495902e-08f;
    p = p * x2 - 2.10102402082508e-06f;
    p = p * x2 - 5.69250639462346e-05f;
    p = p * x2 - 7.34990630326855e-04f;
    p = p * x2 - 2.95459980854025e-03f;
    p = p * x2 - 1.60960333262415e-02f;
    p = p * x;
    VF q = x2 * -1.45660718464996e-05f - 2.13374055278905e-04f;
    q = q * x2 - 1.68282697438203e-03f;
    q = q * x2 - 7.37332916720468e-03f;
    q = q * x2 - 1.42647390514189e-02f;
    return F(sel)(a != a, a, p / q);
}

static inline __attribute__((always_inline)) VF F(act)(int act, VF x, float p0, float p1) {
    switch (act) {
    case FK_ACT_RELU: return F(sel)(x > 0.0f, x, F(splat)(0.0f));
    case FK_ACT_CLIP: {
        // min(max(x, lo), hi), as ONNX defines it (hi wins when lo > hi); NaN stays NaN.
        VF m = F(sel)(x < p0, F(splat)(p0), x);
        return F(sel)(m > p1, F(splat)(p1), m);
    }
    case FK_ACT_LEAKY_RELU: return F(sel)(x >= 0.0f, x, x * p0);
    case FK_ACT_HARD_SIGMOID: {
        VF h = x * p0 + p1;
        return F(sel)(h < 0.0f, F(splat)(0.0f), F(sel)(h > 1.0f, F(splat)(1.0f), h));
    }
    case FK_ACT_HARD_SWISH: {
        VF h = x * (1.0f / 6.0f) + 0.5f;
        return x * F(sel)(h < 0.0f, F(splat)(0.0f), F(sel)(h > 1.0f, F(splat)(1.0f), h));
    }
    case FK_ACT_SIGMOID: return F(sigmoid)(x);
    case FK_ACT_SILU: return x * F(sigmoid)(x);
    case FK_ACT_TANH: return F(tanh)(x);
    case FK_ACT_EXP: return F(exp)(x);
    case FK_ACT_ERF: return F(erf)(x);
    case FK_ACT_GELU: return 0.5f * x * (1.0f + F(erf)(x * 0.70710678118654752f));
    case FK_ACT_GELU_TANH: return 0.5f * x * (1.0f + F(tanh)(0.79788456080286536f * (x + 0.044715f * x * x * x)));
    default: return x;
    }
}

static void F(unary)(int act, float p0, float p1, const float *x, float *y, long n) {
    long i = 0;
    for (; i + EW_W <= n; i += EW_W) F(store)(y + i, F(act)(act, F(load)(x + i), p0, p1));
    if (i < n) {
        float tmp[EW_W] = {0};
        for (long k = 0; k < n - i; k++) tmp[k] = x[i + k];
        VF v = F(act)(act, F(load)(tmp), p0, p1);
        F(store)(tmp, v);
        for (long k = 0; k < n - i; k++) y[i + k] = tmp[k];
    }
}

static inline __attribute__((always_inline)) VF F(binop)(int op, VF a, VF b) {
    switch (op) {
    case FK_BIN_ADD: return a + b;
    case FK_BIN_SUB: return a - b;
    case FK_BIN_MUL: return a * b;
    case FK_BIN_DIV: return a / b;
    case FK_BIN_MAX: return F(sel)((a > b) | (a != a), a, b);
    default: return F(sel)((a < b) | (a != a), a, b);
    }
}

static void F(binary)(int op, const float *a, long sa, const float *b, long sb, float *y, long n, int act, float p0, float p1) {
    long i = 0;
    VF av = F(splat)(a[0]), bv = F(splat)(b[0]);
    if (act == FK_ACT_NONE) {
        for (; i + EW_W <= n; i += EW_W) {
            VF x = sa ? F(load)(a + i) : av, z = sb ? F(load)(b + i) : bv;
            F(store)(y + i, F(binop)(op, x, z));
        }
    } else {
        for (; i + EW_W <= n; i += EW_W) {
            VF x = sa ? F(load)(a + i) : av, z = sb ? F(load)(b + i) : bv;
            F(store)(y + i, F(act)(act, F(binop)(op, x, z), p0, p1));
        }
    }
    if (i < n) {
        float ta[EW_W] = {0}, tb[EW_W] = {0};
        for (long k = 0; k < n - i; k++) { ta[k] = a[(i + k) * sa]; tb[k] = b[(i + k) * sb]; }
        VF v = F(act)(act, F(binop)(op, F(load)(ta), F(load)(tb)), p0, p1);
        F(store)(ta, v);
        for (long k = 0; k < n - i; k++) y[i + k] = ta[k];
    }
}

static void F(softmax)(const float *x, float *y, long rows, long n) {
    for (long r = 0; r < rows; r++) {
        const float *xs = x + r * n;
        float *ys = y + r * n;
        float m = -__builtin_inff();
        for (long k = 0; k < n; k++) m = xs[k] > m ? xs[k] : m;
        if (m != m) m = __builtin_nanf("");
        VF sum = F(splat)(0.0f);
        long i = 0;
        for (; i + EW_W <= n; i += EW_W) {
            VF e = F(exp)(F(load)(xs + i) - m);
            F(store)(ys + i, e);
            sum += e;
        }
        float s = 0;
        for (int k = 0; k < EW_W; k++) s += sum[k];
        if (i < n) {
            float t[EW_W];
            for (int k = 0; k < EW_W; k++) t[k] = -__builtin_inff();
            for (long k = 0; k < n - i; k++) t[k] = xs[i + k] - m;
            VF e = F(exp)(F(load)(t));
            F(store)(t, e);
            for (long k = 0; k < n - i; k++) { ys[i + k] = t[k]; s += t[k]; }
        }
        float inv = 1.0f / s;
        for (i = 0; i + EW_W <= n; i += EW_W) F(store)(ys + i, F(load)(ys + i) * inv);
        for (; i < n; i++) ys[i] *= inv;
    }
}

#undef VF
#undef VI
#undef F
