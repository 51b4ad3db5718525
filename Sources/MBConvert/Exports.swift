// The CLI and the benchmarks see MBBinarize's types (tensors, configurations, packed tensors,
// statistics) and MBCore's (.npy files, seeded randomness) through MBConvert, so they depend
// on MBConvert alone (ARCHITECTURE.md).
@_exported import MBBinarize
@_exported import MBCore
