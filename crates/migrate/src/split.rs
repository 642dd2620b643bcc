//! Splits a PostgreSQL script into statements the way Flyway's PostgreSQL parser does.
//!
//! A `;` ends a statement unless it is inside a string (`'…'` with `''`, `E'…'` with backslash
//! escapes), a quoted identifier (`"…"`), a dollar-quoted body (`$$…$$`, `$tag$…$tag$`), a line
//! comment, a block comment (which nests in PostgreSQL), or a `BEGIN ATOMIC … END` function body.
//! Each statement also learns whether PostgreSQL lets it run inside a transaction, from the same
//! leading keywords Flyway's `PostgreSQLParser` looks at.

/// One statement of a script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// 1-based line of the statement's first token.
    pub line: usize,
    /// The statement without its terminating `;` and without leading comments.
    pub sql: String,
    /// False for statements PostgreSQL refuses inside a transaction block.
    pub transactional: bool,
}

/// Splits `sql` into statements; comments and blank space between them are dropped.
pub fn split(sql: &str) -> Vec<Statement> {
    let bytes = sql.as_bytes();
    let mut statements = Vec::new();
    let mut line = 1;
    let mut i = 0;
    let mut current: Option<Pending> = None;

    while i < bytes.len() {
        let c = bytes[i];
        let next = bytes.get(i + 1).copied();
        match c {
            b'\n' => {
                line += 1;
                i += 1;
            }
            // A line comment ends at a line feed or a carriage return, as PostgreSQL's lexer
            // has it (`non_newline` is `[^\n\r]`): a file with old Mac line ends has a lone `\r`.
            b'-' if next == Some(b'-') => {
                i = bytes[i..]
                    .iter()
                    .position(|&b| b == b'\n' || b == b'\r')
                    .map_or(bytes.len(), |at| i + at);
            }
            b'/' if next == Some(b'*') => {
                i = skip_block_comment(bytes, i, &mut line);
            }
            b';' if current.as_ref().is_none_or(|s| s.atomic_depth == 0) => {
                if let Some(statement) = current.take() {
                    statements.push(statement.finish(sql, i));
                }
                i += 1;
            }
            c if c.is_ascii_whitespace() => i += 1,
            _ => {
                let statement = current.get_or_insert_with(|| Pending::start(i, line));
                i = scan_token(bytes, i, &mut line, statement);
            }
        }
    }
    if let Some(statement) = current {
        statements.push(statement.finish(sql, bytes.len()));
    }
    statements
}

/// A statement being read: where it started and the keywords that classify it.
struct Pending {
    start: usize,
    line: usize,
    /// The first few words, upper-cased, for [`transactional`].
    leading_words: Vec<String>,
    previous_word: String,
    /// Depth of `BEGIN ATOMIC … END` bodies (and `CASE … END` inside them).
    atomic_depth: usize,
}

impl Pending {
    fn start(start: usize, line: usize) -> Self {
        Pending {
            start,
            line,
            leading_words: Vec::new(),
            previous_word: String::new(),
            atomic_depth: 0,
        }
    }

    fn word(&mut self, word: &str) {
        let word = word.to_ascii_uppercase();
        if self.leading_words.len() < 6 {
            self.leading_words.push(word.clone());
        }
        match word.as_str() {
            "ATOMIC" if self.previous_word == "BEGIN" => self.atomic_depth += 1,
            "CASE" if self.atomic_depth > 0 => self.atomic_depth += 1,
            "END" if self.atomic_depth > 0 => self.atomic_depth -= 1,
            _ => {}
        }
        self.previous_word = word;
    }

    fn finish(self, sql: &str, end: usize) -> Statement {
        Statement {
            line: self.line,
            sql: sql[self.start..end].trim_end().to_owned(),
            transactional: transactional(&self.leading_words),
        }
    }
}

/// Whether PostgreSQL accepts the statement in a transaction block, judged like Flyway's
/// `PostgreSQLParser.detectCanExecuteInTransaction` (for PostgreSQL 12 and later).
fn transactional(words: &[String]) -> bool {
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    !matches!(
        words.as_slice(),
        [
            "CREATE" | "DROP",
            "DATABASE" | "TABLESPACE" | "SUBSCRIPTION",
            ..
        ] | ["ALTER", "SYSTEM", ..]
            | ["CREATE" | "DROP", "INDEX", "CONCURRENTLY", ..]
            | ["CREATE" | "DROP", "UNIQUE", "INDEX", "CONCURRENTLY", ..]
            | ["REINDEX", "SCHEMA" | "DATABASE" | "SYSTEM", ..]
            | ["REINDEX", "VERBOSE", "SCHEMA" | "DATABASE" | "SYSTEM", ..]
            | ["VACUUM", ..]
            | ["DISCARD", "ALL", ..]
    )
}

/// Reads one token starting at `i` (a word, a quoted string or identifier, a dollar-quoted body,
/// or a single other byte) and returns the index after it.
fn scan_token(bytes: &[u8], i: usize, line: &mut usize, statement: &mut Pending) -> usize {
    let c = bytes[i];
    if is_word_start(c) {
        let end = i + bytes[i..]
            .iter()
            .position(|&b| !is_word_continue(b))
            .unwrap_or(bytes.len() - i);
        // `E'…'` is an escape string: backslash escapes a quote there.
        if end - i == 1 && (c == b'E' || c == b'e') && bytes.get(end) == Some(&b'\'') {
            return skip_quoted(bytes, end, b'\'', true, line);
        }
        // Words are ASCII-delimited, so slicing at these byte offsets stays on char boundaries.
        statement.word(&String::from_utf8_lossy(&bytes[i..end]));
        return end;
    }
    match c {
        b'\'' => skip_quoted(bytes, i, b'\'', false, line),
        b'"' => skip_quoted(bytes, i, b'"', false, line),
        b'$' => match dollar_tag(bytes, i) {
            Some(tag) => {
                let body = i + tag.len();
                let end = find_from(bytes, body, tag).map_or(bytes.len(), |at| at + tag.len());
                *line += count_newlines(&bytes[i..end]);
                end
            }
            None => i + 1,
        },
        b'0'..=b'9' => {
            i + bytes[i..]
                .iter()
                .position(|&b| !is_word_continue(b))
                .unwrap_or(bytes.len() - i)
        }
        _ => i + 1,
    }
}

fn is_word_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b >= 0x80
}

fn is_word_continue(b: u8) -> bool {
    is_word_start(b) || b.is_ascii_digit() || b == b'$'
}

/// The `$tag$` opening a dollar-quoted string at `i`, if there is one (`$1` is a parameter).
fn dollar_tag(bytes: &[u8], i: usize) -> Option<&[u8]> {
    let rest = &bytes[i + 1..];
    let len = rest.iter().position(|&b| b == b'$')?;
    let tag = &rest[..len];
    let valid = tag.first().is_none_or(|&b| is_word_start(b))
        && tag.iter().all(|&b| is_word_start(b) || b.is_ascii_digit());
    valid.then(|| &bytes[i..i + len + 2])
}

/// Skips a quoted string or identifier opened at `i`; a doubled quote stands for itself.
fn skip_quoted(
    bytes: &[u8],
    i: usize,
    quote: u8,
    backslash_escapes: bool,
    line: &mut usize,
) -> usize {
    let mut j = i + 1;
    while j < bytes.len() {
        match bytes[j] {
            b'\\' if backslash_escapes => {
                if bytes.get(j + 1) == Some(&b'\n') {
                    *line += 1;
                }
                j += 2;
            }
            b if b == quote && bytes.get(j + 1) == Some(&quote) => j += 2,
            b if b == quote => return j + 1,
            b'\n' => {
                *line += 1;
                j += 1;
            }
            _ => j += 1,
        }
    }
    bytes.len()
}

/// Skips a block comment opened at `i`; PostgreSQL block comments nest.
fn skip_block_comment(bytes: &[u8], i: usize, line: &mut usize) -> usize {
    let mut depth = 0;
    let mut j = i;
    while j < bytes.len() {
        match (bytes[j], bytes.get(j + 1).copied()) {
            (b'/', Some(b'*')) => {
                depth += 1;
                j += 2;
            }
            (b'*', Some(b'/')) => {
                depth -= 1;
                j += 2;
                if depth == 0 {
                    return j;
                }
            }
            (b'\n', _) => {
                *line += 1;
                j += 1;
            }
            _ => j += 1,
        }
    }
    bytes.len()
}

fn find_from(bytes: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    bytes[from..]
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|at| from + at)
}

fn count_newlines(bytes: &[u8]) -> usize {
    bytes.iter().filter(|&&b| b == b'\n').count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sqls(script: &str) -> Vec<String> {
        split(script).into_iter().map(|s| s.sql).collect()
    }

    #[test]
    fn splits_on_semicolons_and_drops_comments_between_statements() {
        let script = "-- header\nCREATE TABLE a (id int);\n\n/* block */\nINSERT INTO a VALUES (1);\nSELECT 1";
        let statements = split(script);
        assert_eq!(
            statements
                .iter()
                .map(|s| (s.line, s.sql.as_str()))
                .collect::<Vec<_>>(),
            [
                (2, "CREATE TABLE a (id int)"),
                (5, "INSERT INTO a VALUES (1)"),
                (6, "SELECT 1"),
            ]
        );
    }

    #[test]
    fn dollar_quoted_bodies_keep_their_semicolons() {
        let script = "CREATE FUNCTION f() RETURNS int AS $$ SELECT 1; $$ LANGUAGE sql;\n\
                      DO $body$ BEGIN PERFORM 1; RAISE NOTICE '$$;'; END $body$;\n\
                      SELECT $1, a$b$c FROM t;";
        assert_eq!(
            sqls(script),
            [
                "CREATE FUNCTION f() RETURNS int AS $$ SELECT 1; $$ LANGUAGE sql",
                "DO $body$ BEGIN PERFORM 1; RAISE NOTICE '$$;'; END $body$",
                "SELECT $1, a$b$c FROM t",
            ]
        );
    }

    #[test]
    fn strings_and_quoted_identifiers_keep_their_semicolons() {
        let script = "INSERT INTO \"we;ird\"\"name\" VALUES ('it''s; fine', E'back\\'slash;', 'C:\\');\nSELECT 2;";
        assert_eq!(
            sqls(script),
            [
                "INSERT INTO \"we;ird\"\"name\" VALUES ('it''s; fine', E'back\\'slash;', 'C:\\')",
                "SELECT 2",
            ]
        );
    }

    #[test]
    fn comments_hide_semicolons_and_block_comments_nest() {
        let script = "SELECT 1 -- not here;\n + 1 /* nor /* nested; */ here; */ ;\nSELECT 2;";
        assert_eq!(
            sqls(script),
            [
                "SELECT 1 -- not here;\n + 1 /* nor /* nested; */ here; */",
                "SELECT 2"
            ]
        );
    }

    #[test]
    fn a_line_comment_ends_at_a_lone_carriage_return() {
        assert_eq!(
            sqls("SELECT 1 -- one\r; SELECT 2"),
            ["SELECT 1 -- one", "SELECT 2"]
        );
    }

    #[test]
    fn begin_atomic_bodies_are_one_statement() {
        let script = "CREATE FUNCTION f(x int) RETURNS int LANGUAGE sql\nBEGIN ATOMIC\n  SELECT CASE WHEN x > 0 THEN 1 ELSE 0 END;\n  SELECT 2;\nEND;\nSELECT 3;";
        let statements = sqls(script);
        assert_eq!(statements.len(), 2, "{statements:?}");
        assert!(statements[0].ends_with("END"));
        assert_eq!(statements[1], "SELECT 3");
    }

    #[test]
    fn line_numbers_count_newlines_inside_strings_and_comments() {
        let script = "SELECT 'a\nb';\n/* c\nd */\nSELECT $$\n$$;\nSELECT 4;";
        let lines: Vec<usize> = split(script).iter().map(|s| s.line).collect();
        assert_eq!(lines, [1, 5, 7]);
    }

    #[test]
    fn knows_which_statements_cannot_run_in_a_transaction() {
        let script = "CREATE INDEX CONCURRENTLY IF NOT EXISTS i ON t (a);\n\
                      create unique index concurrently j on t (b);\n\
                      DROP INDEX CONCURRENTLY i;\nVACUUM t;\nCREATE DATABASE d;\nALTER SYSTEM SET x = 1;\n\
                      CREATE INDEX i ON t (a);\nSELECT 'CREATE INDEX CONCURRENTLY';\nCOMMENT ON INDEX i IS 'x';";
        let flags: Vec<bool> = split(script).iter().map(|s| s.transactional).collect();
        assert_eq!(
            flags,
            [false, false, false, false, false, false, true, true, true]
        );
    }

    #[test]
    fn empty_and_comment_only_scripts_have_no_statements() {
        assert!(split("").is_empty());
        assert!(split("-- nothing\n/* here */\n;;\n").is_empty());
    }
}
