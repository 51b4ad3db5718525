// MBKernels is built in a later issue; see ../shared/design/ARCHITECTURE.md.
