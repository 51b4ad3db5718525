// The pipeline's vocabulary comes with it: a client of MBConvert (the executables, MBTools, an
// app converting models) sees MBCore's types (P, mask method, element types, .npy files, seeded
// randomness) and MBBinarize's (tensors, configurations, statistics) without importing them.
@_exported import MBBinarize
@_exported import MBCore
