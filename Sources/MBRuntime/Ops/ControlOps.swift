import MBCore

/// If: both branches compiled at load in scopes nested in the node's (they read outer values);
/// the condition picks one at run time.
enum ControlOps {
    static let table: [String: OpTable.Compile] = [
        "If": { n in
            let thenGraph = try n.subgraph("then_branch"), elseGraph = try n.subgraph("else_branch")
            guard thenGraph.outputSlots.count == n.outputCount, elseGraph.outputSlots.count == n.outputCount else {
                throw n.bad("branches produce \(thenGraph.outputSlots.count) and \(elseGraph.outputSlots.count) outputs for \(n.outputCount) node outputs")
            }
            return { i, c in
                let cond = try i.required(0, "cond")
                guard cond.count == 1 else { throw OpError("cond must hold one value, got shape \(cond.shape)") }
                return try c.run(intValues(cond)[0] != 0 ? thenGraph : elseGraph)
            }
        },
    ]
}
