// OpenBLAS's CBLAS interface (Debian libopenblas-dev; pkg-config "openblas" points at the
// openblas-pthread include folder). openblas_set_num_threads is declared by OpenBLAS's cblas.h.
#include <cblas.h>

// Two LAPACK routines OpenBLAS also exports (Debian's build has 32-bit integers), declared here
// because OpenBLAS ships no LAPACK header beside cblas.h: Cholesky factorization and the
// inverse from it, for the output-aware fit's second-moment matrices.
void dpotrf_(const char *uplo, const int *n, double *a, const int *lda, int *info);
void dpotri_(const char *uplo, const int *n, double *a, const int *lda, int *info);
