import ArgumentParser
import Foundation

/// The one place errors become exit codes: a library error prints as its one-line description
/// on stderr (`mbconvert: file: place: problem`) and exits with status 1.
enum CLIErrors {
    static func reporting<T>(_ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as ValidationError {
            throw error
        } catch let error as ExitCode {
            throw error
        } catch {
            FileHandle.standardError.write(Data("mbconvert: error: \(error)\n".utf8))
            throw ExitCode(1)
        }
    }
}
