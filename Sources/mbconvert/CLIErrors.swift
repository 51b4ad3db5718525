import ArgumentParser
import Foundation
import MBConvert

/// The one place errors become exit codes: the pipeline's `ConversionError` prints its message
/// (one line; one per problem for a policy file), any other library error its own description
/// (`file: place: problem`), on stderr after "mbconvert: error: ", and the exit status is 1.
/// ArgumentParser's own errors (usage, validation) pass through to it.
enum CLIErrors {
    static func reporting<T>(_ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as ValidationError {
            throw error
        } catch let error as ExitCode {
            throw error
        } catch let error as ConversionError {
            throw failure(error.description)
        } catch {
            throw failure("\(error)")
        }
    }

    private static func failure(_ message: String) -> ExitCode {
        FileHandle.standardError.write(Data("mbconvert: error: \(message)\n".utf8))
        return ExitCode(1)
    }
}
