import MBCore
import Testing

@Suite struct ElementTypeTests {
    @Test func rawByteCountsPackSubByteTypes() {
        #expect(ElementType.float.rawByteCount(elements: 3) == 12)
        #expect(ElementType.int4.rawByteCount(elements: 3) == 2)
        #expect(ElementType.uint2.rawByteCount(elements: 5) == 2)
        #expect(ElementType.string.rawByteCount(elements: 1) == nil)
        #expect(ElementType.double.rawByteCount(elements: Int.max / 4) == nil)
    }

    @Test func everyTypeHasAUniqueName() {
        let names = ElementType.allCases.map(\.name)
        #expect(Set(names).count == names.count)
    }

    @Test func elementCountRejectsNegativeAndOverflow() {
        #expect(elementCount(of: [2, 3, 4] as [Int64]) == 24)
        #expect(elementCount(of: [] as [Int64]) == 1)
        #expect(elementCount(of: [2, -1] as [Int64]) == nil)
        #expect(elementCount(of: [Int64.max, 2]) == nil)
    }
}
