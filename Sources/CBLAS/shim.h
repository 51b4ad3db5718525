// OpenBLAS's CBLAS interface (Debian libopenblas-dev; pkg-config "openblas" points at the
// openblas-pthread include folder). openblas_set_num_threads is declared by OpenBLAS's cblas.h.
#include <cblas.h>
