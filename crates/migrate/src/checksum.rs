//! Flyway's checksum of a SQL script.
//!
//! Flyway reads the script with Java's `BufferedReader::readLine`, which splits on `\n`, `\r` and
//! `\r\n` and drops the terminators, and feeds each line's UTF-8 bytes into one CRC-32. The one
//! byte-order mark Flyway's reader drops is removed where the file is read ([`crate::source`]),
//! not here: a second mark is part of the text for Flyway too. Feeding lines back to back without their terminators is the
//! same as one CRC-32 over the text with every `\r` and `\n` removed, which is what this computes.
//! The result is stored as a signed 32-bit integer, as Java's `(int) crc32.getValue()` does.

/// The checksum Flyway records in `flyway_schema_history.checksum` for a script with this text
/// (as read: without the byte-order mark the file may start with).
pub fn checksum(text: &str) -> i32 {
    let mut crc = crc32fast::Hasher::new();
    for line in text.split(['\r', '\n']) {
        crc.update(line.as_bytes());
    }
    // Java's `(int)` cast keeps the low 32 bits and reinterprets them as two's complement.
    crc.finalize() as i32
}

#[cfg(test)]
mod tests {
    use super::checksum;

    #[test]
    fn matches_flyway_for_one_statement_whatever_the_line_ending() {
        for text in ["SELECT 1;\n", "SELECT 1;", "SELECT 1;\r\n"] {
            assert_eq!(checksum(text), 78787420, "{text:?}");
        }
    }

    #[test]
    fn matches_flyway_for_mixed_line_endings() {
        assert_eq!(checksum("abc\ndef efg\nxyz"), 989464445);
        assert_eq!(checksum("abc\r\ndef efg\nxyz\r\n"), 989464445);
    }

    #[test]
    fn keeps_trailing_spaces_and_is_signed() {
        assert_eq!(checksum("SELECT 1; \n"), -1951047511);
    }

    #[test]
    fn empty_file_is_zero() {
        assert_eq!(checksum(""), 0);
    }
}
