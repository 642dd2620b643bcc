//! Percent-encoding for the URLs the stack hands out (`postgres://`, `redis://`).

/// Percent-encodes what may not stand in a URL's user info or path segment.
pub(crate) fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_characters_are_percent_encoded() {
        assert_eq!(url_encode("amtp"), "amtp");
        assert_eq!(url_encode("p@ss:w/rd"), "p%40ss%3Aw%2Frd");
    }
}
