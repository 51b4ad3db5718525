/// The one table of operators: ONNX op type (default domain) → compile function. A compile
/// function reads and checks the node's attributes at load (handling opset differences, such as
/// attributes that became inputs) and returns the closure that runs the node.
enum OpTable {
    typealias Compile = @Sendable (NodeContext) throws -> OpRun

    static let all: [String: Compile] = {
        var t: [String: Compile] = [:]
        for (name, c) in ElementwiseOps.table { t[name] = c }
        for (name, c) in BinaryOps.table { t[name] = c }
        for (name, c) in ConvOps.table { t[name] = c }
        for (name, c) in PoolOps.table { t[name] = c }
        for (name, c) in MatrixOps.table { t[name] = c }
        for (name, c) in NormalizationOps.table { t[name] = c }
        for (name, c) in ShapeOps.table { t[name] = c }
        for (name, c) in DataOps.table { t[name] = c }
        for (name, c) in ReduceOps.table { t[name] = c }
        for (name, c) in ResizeOps.table { t[name] = c }
        for (name, c) in ControlOps.table { t[name] = c }
        for (name, c) in RecurrentOps.table { t[name] = c }
        for (name, c) in IndexingOps.table { t[name] = c }
        for (name, c) in LayerNormOps.table { t[name] = c }
        for (name, c) in QuantizeOps.table { t[name] = c }
        for (name, c) in PoolExtrasOps.table { t[name] = c }
        for (name, c) in GRUAndRNNOps.table { t[name] = c }
        for (name, c) in DetectionOps.table { t[name] = c }
        for (name, c) in EinsumOp.table { t[name] = c }
        for (name, c) in GridSampleOp.table { t[name] = c }
        for (name, c) in LossOps.table { t[name] = c }
        for (name, c) in BitwiseOps.table { t[name] = c }
        for (name, c) in SignalOps.table { t[name] = c }
        for (name, c) in IntegerOps.table { t[name] = c }
        for (name, c) in AttentionOp.table { t[name] = c }
        for (name, c) in SequenceModelOps.table { t[name] = c }
        for (name, c) in BitCastOp.table { t[name] = c }
        for (name, c) in AffineGridOp.table { t[name] = c }
        for (name, c) in DetOp.table { t[name] = c }
        for (name, c) in OptionalOps.table { t[name] = c }
        for (name, c) in DeformConvOp.table { t[name] = c }
        for (name, c) in Col2ImOp.table { t[name] = c }
        for (name, c) in UnsignedOps.overriding(t) { t[name] = c }
        return t
    }()

    /// Operators of other domains the runtime implements (onnxruntime's contrib operators).
    static let contrib: [String: [String: Compile]] = ["com.microsoft": MatMulNBitsOp.table]

    /// The compile function of `opType` in `domain` ("" and "ai.onnx" are the default domain).
    static func lookup(_ domain: String, _ opType: String) -> Compile? {
        domain.isEmpty || domain == "ai.onnx" ? all[opType] : contrib[domain]?[opType]
    }

    typealias ValueCompile = @Sendable (NodeContext) throws -> ValueRun

    /// Operators that make or read sequences and optionals (default domain), compiled to value
    /// steps; see `GraphCompiler.compile` for the few that also have a tensor form in `all`.
    static let values: [String: ValueCompile] = SequenceOps.table

    /// Operators in `values` only for their string form: a value step only when an input is
    /// declared a string tensor, else their tensor form.
    static let stringForms: Set<String> = ["Equal"]

    /// The value-step compile function of `opType` in `domain`, if it has one.
    static func valueLookup(_ domain: String, _ opType: String) -> ValueCompile? {
        domain.isEmpty || domain == "ai.onnx" ? values[opType] : nil
    }

    /// Whether the runtime runs `opType` of `domain` in some form.
    static func supports(_ domain: String, _ opType: String) -> Bool {
        lookup(domain, opType) != nil || valueLookup(domain, opType) != nil
    }

    /// Operators never evaluated at load even when their inputs are constant.
    static let neverFold: Set<String> = ["If", "Loop", "Scan"]
}
