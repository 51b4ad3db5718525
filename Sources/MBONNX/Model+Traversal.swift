extension ONNXModel {
    /// Calls `body` for every dense tensor in the model with a readable description of where it
    /// is (e.g. `graph node 'If_0' attribute 'then_branch' initializer 'w'`).
    public func forEachTensor(_ body: (ONNXTensor, String) -> Void) {
        if let graph { graph.forEachTensor(place: "graph", body) }
        for f in functions {
            for (i, node) in f.nodes.enumerated() {
                node.forEachTensor(place: "function '\(f.name ?? "")' node '\(node.name ?? "#\(i)")'", body)
            }
        }
    }
}

extension ONNXGraph {
    public func forEachTensor(place: String, _ body: (ONNXTensor, String) -> Void) {
        for (i, t) in initializers.enumerated() { body(t, "\(place) initializer '\(t.name ?? "#\(i)")'") }
        for (i, s) in sparseInitializers.enumerated() {
            if let v = s.values { body(v, "\(place) sparse initializer #\(i) values") }
            if let x = s.indices { body(x, "\(place) sparse initializer #\(i) indices") }
        }
        for (i, node) in nodes.enumerated() {
            node.forEachTensor(place: "\(place) node '\(node.name ?? "#\(i)")'", body)
        }
    }

    /// Every node of this graph and of its subgraphs, depth first, with the subgraph depth.
    public func forEachNode(depth: Int = 0, _ body: (ONNXNode, Int) -> Void) {
        for node in nodes {
            body(node, depth)
            for a in node.attributes {
                a.g?.forEachNode(depth: depth + 1, body)
                for g in a.graphs { g.forEachNode(depth: depth + 1, body) }
            }
        }
    }
}

extension ONNXNode {
    func forEachTensor(place: String, _ body: (ONNXTensor, String) -> Void) {
        for (i, a) in attributes.enumerated() {
            let attrPlace = "\(place) attribute '\(a.name ?? "#\(i)")'"
            if let t = a.t { body(t, attrPlace) }
            for (k, t) in a.tensors.enumerated() { body(t, "\(attrPlace)[\(k)]") }
            if let s = a.sparseTensor {
                if let v = s.values { body(v, "\(attrPlace) values") }
                if let x = s.indices { body(x, "\(attrPlace) indices") }
            }
            a.g?.forEachTensor(place: attrPlace, body)
            for (k, g) in a.graphs.enumerated() { g.forEachTensor(place: "\(attrPlace)[\(k)]", body) }
        }
    }
}
