//! The SQL splitter against generated scripts: statements made of every kind of string,
//! identifier and comment PostgreSQL has, each holding `;`, quotes, `$`, `--` and `/*`, joined
//! by `;` and comments. The splitter must find exactly the statements the script was made of,
//! and PostgreSQL itself, given the whole script at once, must see the same statements with the
//! same values.
//!
//! Seeded and of a fixed size, so a run is reproducible and a failure is shown shrunk.

use amtp_migrate::split::split;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};

/// Cases per run, per property; the PostgreSQL one sends each script to the server.
const CASES: u32 = 256;
const SERVER_CASES: u32 = 64;

fn config(cases: u32) -> Config {
    Config {
        cases,
        rng_seed: RngSeed::Fixed(17),
        failure_persistence: None,
        ..Config::default()
    }
}

/// Text inside strings and identifiers: everything that would end or start something else
/// outside them, and multi-byte characters.
fn quoted_text() -> impl Strategy<Value = String> {
    let chars = prop::sample::select(vec![
        'a', 'Z', ' ', ';', '\'', '"', '\\', '$', '-', '/', '*', '\n', '\r', '\t', 'é', '€',
    ]);
    prop::collection::vec(chars, 0..12).prop_map(|c| c.into_iter().collect())
}

/// Text of a comment: no `*` or `/` (which could close or open one by accident), and for a
/// line comment no line break.
fn comment_text(line: bool) -> impl Strategy<Value = String> {
    let mut chars = vec!['a', ' ', ';', '\'', '"', '$', '-', 'é'];
    if line {
        chars.extend(['/', '*']);
    } else {
        chars.push('\n');
    }
    prop::collection::vec(prop::sample::select(chars), 0..10).prop_map(|c| c.into_iter().collect())
}

/// A comment: `-- …` to the end of its line (`\n`, `\r\n` or a lone `\r`, all of which end
/// one for PostgreSQL), or a `/* … */` with comments nested inside.
fn comment() -> impl Strategy<Value = String> {
    let line = (
        comment_text(true),
        prop::sample::select(vec!["\n", "\r\n", "\r"]),
    )
        .prop_map(|(text, end)| format!("--{text}{end}"));
    let block = comment_text(false).prop_map(|text| format!("/*{text}*/"));
    block
        .prop_recursive(3, 8, 3, |inner| {
            (comment_text(false), inner, comment_text(false))
                .prop_map(|(before, nested, after)| format!("/*{before}{nested}{after}*/"))
        })
        .boxed()
        .prop_union(line.boxed())
        .boxed()
}

/// Blank space and comments between tokens; never empty, so tokens stay apart.
fn gap() -> impl Strategy<Value = String> {
    let space = prop::sample::select(vec![" ", "\n", "\t", "\r\n", "\x0c"]).prop_map(String::from);
    let part = prop_oneof![3 => space, 1 => comment()];
    prop::collection::vec(part, 1..3).prop_map(|parts| format!(" {}", parts.concat()))
}

/// A string literal and the text PostgreSQL reads from it.
fn literal() -> impl Strategy<Value = (String, String)> {
    let standard = quoted_text().prop_map(|v| (format!("'{}'", v.replace('\'', "''")), v));
    let escaped = (quoted_text(), any::<bool>()).prop_map(|(v, backslash_quote)| {
        let quote = if backslash_quote { "\\'" } else { "''" };
        let body = v.replace('\\', "\\\\").replace('\'', quote);
        (format!("E'{body}'"), v)
    });
    let tag = prop::sample::select(vec!["", "t", "_a1", "body", "é"]);
    let dollar = (tag, quoted_text())
        .prop_filter("the body must not hold its closing tag", |(tag, v)| {
            let close = format!("${tag}$");
            format!("{v}{close}").find(&close) == Some(v.len())
        })
        .prop_map(|(tag, v)| (format!("${tag}${v}${tag}$"), v));
    prop_oneof![standard, escaped, dollar]
}

/// `SELECT lit || lit … AS "alias"`, with gaps anywhere between tokens; and the value.
fn statement() -> impl Strategy<Value = (String, String)> {
    let alias = quoted_text()
        .prop_filter("an identifier is never empty", |a| !a.is_empty())
        .prop_map(|a| format!("\"{}\"", a.replace('"', "\"\"")));
    (
        prop::collection::vec((literal(), prop::option::of(gap())), 1..4),
        alias,
    )
        .prop_map(|(parts, alias)| {
            let mut sql = String::from("SELECT");
            let mut value = String::new();
            for (index, ((literal, text), gap)) in parts.into_iter().enumerate() {
                if index > 0 {
                    sql.push_str(" ||");
                }
                sql.push_str(gap.as_deref().unwrap_or(" "));
                sql.push_str(&literal);
                value.push_str(&text);
            }
            sql.push_str(&format!(" AS {alias}"));
            (sql, value)
        })
}

/// A script, and its statements as the splitter should return them: the text from the first
/// token to the `;` (trailing blanks dropped), its line, and the value it selects.
fn script() -> impl Strategy<Value = (String, Vec<(String, usize, String)>)> {
    let separator = (
        prop::option::of(gap()),
        prop::sample::select(vec![";", ";;", "; ;"]),
        prop::option::of(gap()),
    );
    (
        prop::option::of(gap()),
        prop::collection::vec((statement(), separator), 1..5),
        any::<bool>(),
    )
        .prop_map(|(leading, statements, last_terminated)| {
            let mut script = leading.unwrap_or_default();
            let mut expected = Vec::new();
            let count = statements.len();
            for (index, ((sql, value), (before, semicolon, after))) in
                statements.into_iter().enumerate()
            {
                let line = 1 + script.matches('\n').count();
                let before = before.unwrap_or_default();
                expected.push((format!("{sql}{before}").trim_end().to_owned(), line, value));
                script.push_str(&sql);
                script.push_str(&before);
                if index + 1 < count || last_terminated {
                    script.push_str(semicolon);
                    script.push_str(&after.unwrap_or_default());
                }
            }
            (script, expected)
        })
}

proptest! {
    #![proptest_config(config(CASES))]

    #[test]
    fn generated_scripts_split_where_they_were_joined((script, expected) in script()) {
        let found: Vec<(String, usize)> =
            split(&script).into_iter().map(|s| (s.sql, s.line)).collect();
        let expected: Vec<(String, usize)> =
            expected.into_iter().map(|(sql, line, _)| (sql, line)).collect();
        prop_assert_eq!(found, expected, "script: {:?}", script);
    }

    #[test]
    fn any_text_splits_without_a_panic_into_statements_of_its_own_text(
        script in prop::collection::vec(
            prop::sample::select(vec![
                "a", " ", ";", "'", "\"", "E'", "\\", "$", "$$", "$t$", "--", "/*", "*/", "\n",
                "\r", "BEGIN", " ATOMIC", "CASE", "END", "é",
            ]),
            0..40,
        ).prop_map(|parts| parts.concat())
    ) {
        for statement in split(&script) {
            prop_assert!(!statement.sql.is_empty());
            prop_assert!(script.contains(&statement.sql), "{:?} in {:?}", statement.sql, script);
        }
    }
}

/// PostgreSQL runs the whole script in one simple query; each row it returns is the value of
/// one statement the splitter found, in order, and each of those statements alone selects it.
#[test]
fn postgres_sees_the_statements_the_splitter_finds() {
    let client = std::cell::RefCell::new(crate::util::connect(&amtp_testkit::stack_env(
        "DIRECT_DATABASE_URL",
    )));
    let mut runner = proptest::test_runner::TestRunner::new(config(SERVER_CASES));
    let outcome = runner.run(&script(), |(script, expected)| {
        let mut client = client.borrow_mut();
        let mut first_values = |sql: &str| -> Result<Vec<String>, TestCaseError> {
            let messages = client
                .simple_query(sql)
                .map_err(|e| TestCaseError::fail(format!("PostgreSQL refused {sql:?}: {e}")))?;
            Ok(messages
                .iter()
                .filter_map(|message| match message {
                    postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
                    _ => None,
                })
                .collect())
        };
        let by_server = first_values(&script)?;
        let mut by_splitter = Vec::new();
        for statement in split(&script) {
            by_splitter.extend(first_values(&statement.sql)?);
        }
        let values: Vec<String> = expected.into_iter().map(|(_, _, value)| value).collect();
        prop_assert_eq!(&by_server, &values, "script: {:?}", script);
        prop_assert_eq!(&by_splitter, &values, "script: {:?}", script);
        Ok(())
    });
    if let Err(failure) = outcome {
        panic!("{failure}");
    }
}
