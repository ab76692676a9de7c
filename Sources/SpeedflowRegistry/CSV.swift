import Foundation

/// RFC 4180 CSV: fields separated by commas, records by CRLF (LF alone is read too); a field holding a comma,
/// a quote or a line break is quoted, its quotes doubled.
public enum CSV {
    /// One record and the line it starts on (1-based), for errors that name it.
    struct Record {
        var line: Int
        var fields: [String]
    }

    /// The records of `text`; a quote left open is `invalid_csv` naming the line it opened on.
    static func parse(_ text: String) throws(RegistryError) -> [Record] {
        var records: [Record] = []
        var fields: [String] = []
        var field = String.UnicodeScalarView()
        var line = 1
        var recordLine = 1
        var quoted = false
        var quoteLine = 0
        /// The current field was quoted and its closing quote seen: only a separator may follow.
        var closed = false
        var scalars = text.unicodeScalars.makeIterator()
        var pending: Unicode.Scalar? = nil
        // A byte-order mark is not part of the first field.
        var first = true
        func endRecord() {
            fields.append(String(field))
            field = String.UnicodeScalarView()
            // A line with nothing on it is not a record.
            if !(fields.count == 1 && fields[0].isEmpty) { records.append(Record(line: recordLine, fields: fields)) }
            fields = []
        }
        while let c = pending ?? scalars.next() {
            pending = nil
            if first {
                first = false
                if c == "\u{FEFF}" { continue }
            }
            if quoted {
                if c == "\"" {
                    let next = scalars.next()
                    if next == "\"" {
                        field.append("\"")
                    } else {
                        quoted = false
                        closed = true
                        pending = next
                    }
                } else {
                    if c == "\n" { line += 1 }
                    field.append(c)
                }
                continue
            }
            switch c {
            case ",":
                fields.append(String(field))
                field = String.UnicodeScalarView()
                closed = false
            case "\r":
                let next = scalars.next()
                if next != "\n" { pending = next }
                endRecord()
                line += 1
                recordLine = line
                closed = false
            case "\n":
                endRecord()
                line += 1
                recordLine = line
                closed = false
            case "\"" where field.isEmpty && !closed:
                quoted = true
                quoteLine = line
            default:
                if closed || c == "\"" {
                    throw RegistryError("invalid_csv", "line \(line): a quote may only enclose a whole field (write \"\" for a quote inside a quoted field)")
                }
                field.append(c)
            }
        }
        if quoted { throw RegistryError("invalid_csv", "line \(quoteLine): a quoted field is never closed") }
        if !field.isEmpty || !fields.isEmpty || closed { endRecord() }
        return records
    }

    /// One field, quoted when it must be (and when it has spaces at its ends, which some readers trim).
    public static func field(_ s: String) -> String {
        let needsQuotes = s.unicodeScalars.contains { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }
            || s.first?.isWhitespace == true || s.last?.isWhitespace == true
        guard needsQuotes else { return s }
        return "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    public static func record(_ fields: [String]) -> String { fields.map(field).joined(separator: ",") + "\r\n" }
}
