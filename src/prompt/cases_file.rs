//! Cases from a data file: `cases_file = "cases.csv" | "cases.jsonl" | "cases.yaml"`.
//!
//! Real users arrive with a spreadsheet of questions, not TOML. Each row is a case:
//! - `name` (optional) names it; without one it is called `FILE:LINE` (e.g. `cases.csv:12`),
//!   which is also where to look when it fails;
//! - `expect_any`, `expect_all`, `expect_none` (lists), `expect_regex`, `expect_equals` and
//!   `expect_case_sensitive` (`true`/`false`) become the case's checks;
//! - `turns` (JSONL and YAML only) is a conversation, as in `[[case]] turns = [...]`;
//! - every other column is a variable. An empty CSV cell is an empty value.
//!
//! Lists: in CSV a cell is split on `|` (write `\|` for a literal bar, `\\` for a backslash);
//! in JSONL and YAML a list is an array, and a plain string is one item (never split).
//! Numbers and booleans in JSONL/YAML become their text. Anything else (an object where a
//! value is expected, an unknown `expect_*` column, a bad regex) is an input error naming the
//! file, line and column.

use std::collections::BTreeMap;
use std::path::Path;

use super::variant::{validate_turns, Case, Turn};
use crate::error::InputError;
use crate::eval::expect::Expect;

/// The row formats, by file extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Csv,
    Jsonl,
    Yaml,
}

fn format_of(path: &Path) -> Option<Format> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    match ext.as_str() {
        "csv" => Some(Format::Csv),
        "jsonl" | "ndjson" => Some(Format::Jsonl),
        "yaml" | "yml" => Some(Format::Yaml),
        _ => None,
    }
}

/// A cell value before it is turned into a var or a check.
#[derive(Debug, Clone)]
enum Cell {
    Text(String),
    List(Vec<String>),
    Turns(Vec<Turn>),
}

/// One row: its 1-based line, and each column with the 1-based column it starts at.
struct Row {
    line: usize,
    cells: Vec<(String, usize, Cell)>,
}

/// Read every case in `path`. Errors name `path`, the line and the column.
pub(crate) fn load(path: &Path) -> Result<Vec<Case>, InputError> {
    let Some(format) = format_of(path) else {
        return Err(InputError::plain(path, "unknown cases_file format")
            .with_hint("use a .csv, .jsonl or .yaml file"));
    };
    let text = std::fs::read_to_string(path).map_err(|e| InputError::io(path, &e))?;
    parse(path, &text, format)
}

fn parse(path: &Path, text: &str, format: Format) -> Result<Vec<Case>, InputError> {
    let rows = match format {
        Format::Csv => csv_rows(path, text)?,
        Format::Jsonl => jsonl_rows(path, text)?,
        Format::Yaml => yaml_rows(path, text)?,
    };
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "cases".into());
    let mut seen = std::collections::BTreeSet::new();
    // Rows often share a pattern: compile each distinct one once.
    let mut valid_regexes = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let case = row_to_case(path, &file_name, row, &mut valid_regexes)?;
        if !seen.insert(case.name.clone()) {
            return Err(InputError {
                path: path.to_path_buf(),
                position: None,
                message: format!("duplicate case name {:?}", case.name),
                hint: Some("give the rows distinct `name`s".into()),
            });
        }
        out.push(case);
    }
    Ok(out)
}

fn err_at(path: &Path, line: usize, col: usize, msg: impl Into<String>) -> InputError {
    InputError {
        path: path.to_path_buf(),
        position: Some((line, col)),
        message: msg.into(),
        hint: None,
    }
}

fn row_to_case(
    path: &Path,
    file_name: &str,
    row: Row,
    valid_regexes: &mut std::collections::HashSet<(String, bool)>,
) -> Result<Case, InputError> {
    let mut name = None;
    let mut vars = BTreeMap::new();
    let mut expect = Expect::default();
    let mut turns = Vec::new();
    let line = row.line;
    let mut regex_col = 1;
    for (key, col, cell) in row.cells {
        if key == "expect_regex" {
            regex_col = col;
        }
        let bad = |msg: String| err_at(path, line, col, msg);
        let text = |cell: Cell| -> Result<String, InputError> {
            match cell {
                Cell::Text(t) => Ok(t),
                Cell::List(_) | Cell::Turns(_) => Err(bad(format!(
                    "column {key:?} must be a single value, not a list"
                ))),
            }
        };
        let list = |cell: Cell| -> Result<Vec<String>, InputError> {
            match cell {
                Cell::List(l) => Ok(l),
                Cell::Text(t) => Ok(vec![t]),
                Cell::Turns(_) => Err(bad(format!("column {key:?} must be a list of text"))),
            }
        };
        match key.as_str() {
            "name" => name = Some(text(cell)?).filter(|n| !n.trim().is_empty()),
            "turns" => match cell {
                Cell::Turns(t) => turns = t,
                _ => {
                    return Err(bad(
                        "`turns` must be a list of {\"user\": …} / {\"assistant\": …} objects"
                            .into(),
                    ))
                }
            },
            "expect_any" => expect.any = list(cell)?,
            "expect_all" => expect.all = list(cell)?,
            "expect_none" => expect.none = list(cell)?,
            "expect_regex" => expect.regex = Some(text(cell)?).filter(|r| !r.is_empty()),
            "expect_equals" => expect.equals = Some(text(cell)?),
            "expect_case_sensitive" => {
                let t = text(cell)?;
                expect.case_sensitive = match t.trim() {
                    "true" | "1" | "yes" => true,
                    "false" | "0" | "no" | "" => false,
                    other => return Err(bad(format!("expect_case_sensitive must be true or false, not {other:?}"))),
                }
            }
            k if k.starts_with("expect_") => {
                return Err(bad(format!("unknown check column {k:?}")).with_hint(
                    "checks are expect_any, expect_all, expect_none, expect_regex, expect_equals, expect_case_sensitive",
                ))
            }
            _ => {
                let v = text(cell)?;
                vars.insert(key, v);
            }
        }
    }
    // Empty list cells mean "no check".
    for l in [&mut expect.any, &mut expect.all, &mut expect.none] {
        l.retain(|s| !s.is_empty());
    }
    if let Some(r) = &expect.regex {
        let key = (r.clone(), expect.case_sensitive);
        if !valid_regexes.contains(&key) {
            expect
                .validate()
                .map_err(|msg| err_at(path, line, regex_col, msg))?;
            valid_regexes.insert(key);
        }
    }
    validate_turns(&turns).map_err(|m| err_at(path, line, 1, m))?;
    Ok(Case {
        name: name.unwrap_or_else(|| format!("{file_name}:{line}")),
        vars,
        expect,
        turns,
    })
}

// ---- CSV --------------------------------------------------------------------------------

/// Split a CSV list cell on unescaped `|`.
fn split_list(cell: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut chars = cell.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(n @ ('|' | '\\')) => out.last_mut().map(|s| s.push(n)).unwrap_or(()),
                Some(n) => {
                    if let Some(s) = out.last_mut() {
                        s.push('\\');
                        s.push(n);
                    }
                }
                None => out.last_mut().map(|s| s.push('\\')).unwrap_or(()),
            },
            '|' => out.push(String::new()),
            c => out.last_mut().map(|s| s.push(c)).unwrap_or(()),
        }
    }
    out.into_iter().map(|s| s.trim().to_string()).collect()
}

fn is_list_column(name: &str) -> bool {
    matches!(name, "expect_any" | "expect_all" | "expect_none")
}

/// 1-based character column where field `index` of the record starting at byte `start`
/// begins (quotes understood; good enough for pointing at a cell).
fn field_column(text: &str, start: usize, index: usize) -> usize {
    let line_start = text[..start.min(text.len())]
        .rfind('\n')
        .map(|i| i + 1)
        .unwrap_or(0);
    let rest = &text[start.min(text.len())..];
    let mut field = 0;
    let mut in_quotes = false;
    let mut at = rest.len();
    if index == 0 {
        at = 0;
    } else {
        for (i, c) in rest.char_indices() {
            match c {
                '"' => in_quotes = !in_quotes,
                ',' if !in_quotes => {
                    field += 1;
                    if field == index {
                        at = i + 1;
                        break;
                    }
                }
                '\n' if !in_quotes => break,
                _ => {}
            }
        }
    }
    let abs = start + at.min(rest.len());
    text[line_start..abs.min(text.len())].chars().count() + 1
}

fn csv_rows(path: &Path, text: &str) -> Result<Vec<Row>, InputError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(text.as_bytes());
    let headers: Vec<String> = match reader.headers() {
        Ok(h) => h.iter().map(|s| s.trim().to_string()).collect(),
        Err(e) => return Err(csv_error(path, text, &e)),
    };
    if headers.iter().all(|h| h.is_empty()) {
        return Err(err_at(path, 1, 1, "the CSV file has no header row")
            .with_hint("the first row names the columns: vars, name, expect_any, …"));
    }
    for (i, h) in headers.iter().enumerate() {
        if h.is_empty() {
            return Err(err_at(
                path,
                1,
                field_column(text, 0, i),
                format!("column {} has no name", i + 1),
            ));
        }
        if headers[..i].contains(h) {
            return Err(err_at(
                path,
                1,
                field_column(text, 0, i),
                format!("duplicate column {h:?}"),
            ));
        }
    }
    let mut rows = Vec::new();
    let mut record = csv::StringRecord::new();
    loop {
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => return Err(csv_error(path, text, &e)),
        }
        let (line, start) = record
            .position()
            .map(|p| (p.line() as usize, p.byte() as usize))
            .unwrap_or((0, 0));
        if record.iter().all(|f| f.trim().is_empty()) {
            continue;
        }
        let cells = headers
            .iter()
            .zip(record.iter())
            .enumerate()
            .map(|(i, (h, v))| {
                let cell = if is_list_column(h) {
                    Cell::List(split_list(v))
                } else {
                    Cell::Text(v.to_string())
                };
                (h.clone(), field_column(text, start, i), cell)
            })
            .collect();
        rows.push(Row { line, cells });
    }
    Ok(rows)
}

fn csv_error(path: &Path, text: &str, e: &csv::Error) -> InputError {
    match e.kind() {
        csv::ErrorKind::UnequalLengths {
            pos,
            expected_len,
            len,
        } => {
            let (line, start) = pos
                .as_ref()
                .map(|p| (p.line() as usize, p.byte() as usize))
                .unwrap_or((0, 0));
            let col = field_column(text, start, (*len as usize).min(*expected_len as usize));
            err_at(
                path,
                line,
                col,
                format!("this row has {len} fields, the header has {expected_len}"),
            )
            .with_hint("quote cells that contain commas: \"a, b\"")
        }
        csv::ErrorKind::Utf8 { pos, err } => {
            let line = pos.as_ref().map(|p| p.line() as usize).unwrap_or(0);
            err_at(
                path,
                line,
                1,
                format!("field {} is not valid UTF-8", err.field() + 1),
            )
        }
        _ => match e.position() {
            Some(p) => err_at(path, p.line() as usize, 1, e.to_string()),
            None => InputError::plain(path, e.to_string()),
        },
    }
}

// ---- JSONL and YAML ------------------------------------------------------------------

/// A JSON value as a cell. `col` is where the key is, for errors.
fn json_cell(
    path: &Path,
    line: usize,
    col: usize,
    key: &str,
    v: serde_json::Value,
) -> Result<Cell, InputError> {
    use serde_json::Value;
    let scalar = |v: &Value| -> Option<String> {
        match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            Value::Null => Some(String::new()),
            _ => None,
        }
    };
    if key == "turns" {
        let turns: Vec<Turn> = serde_json::from_value(v).map_err(|e| {
            err_at(path, line, col, format!("bad `turns`: {e}"))
                .with_hint("turns = [{\"user\": \"…\"}, {\"assistant\": \"…\"}, {\"user\": \"…\"}]")
        })?;
        return Ok(Cell::Turns(turns));
    }
    match &v {
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for it in items {
                match scalar(it) {
                    Some(s) => out.push(s),
                    None => {
                        return Err(err_at(
                            path,
                            line,
                            col,
                            format!("{key:?}: list items must be text, numbers or booleans"),
                        ))
                    }
                }
            }
            Ok(Cell::List(out))
        }
        other => match scalar(other) {
            Some(s) => Ok(Cell::Text(s)),
            None => Err(err_at(
                path,
                line,
                col,
                format!(
                    "{key:?} is an object; a case's columns are text, numbers, booleans or lists"
                ),
            )),
        },
    }
}

/// The 1-based column of `"key"` in `line_text`, else 1.
fn key_column(line_text: &str, key: &str) -> usize {
    let quoted = format!("\"{key}\"");
    line_text
        .find(&quoted)
        .map(|i| line_text[..i].chars().count() + 1)
        .unwrap_or(1)
}

fn jsonl_rows(path: &Path, text: &str) -> Result<Vec<Row>, InputError> {
    let mut rows = Vec::new();
    for (i, line_text) in text.lines().enumerate() {
        let line = i + 1;
        let trimmed = line_text.trim();
        if trimmed.is_empty() || trimmed.starts_with("//") {
            continue;
        }
        let obj: serde_json::Map<String, serde_json::Value> = serde_json::from_str(trimmed)
            .map_err(|e| {
                let lead = line_text.len() - line_text.trim_start().len();
                err_at(
                    path,
                    line,
                    lead + e.column().max(1),
                    format!("not a JSON object: {e}"),
                )
                .with_hint("each line is one case: {\"question\": \"…\", \"expect_any\": [\"…\"]}")
            })?;
        let mut cells = Vec::with_capacity(obj.len());
        for (k, v) in obj {
            let col = key_column(line_text, &k);
            let cell = json_cell(path, line, col, &k, v)?;
            cells.push((k, col, cell));
        }
        rows.push(Row { line, cells });
    }
    Ok(rows)
}

/// Lines where each top-level list item starts (`- ` at column 1), for row positions.
fn yaml_item_lines(text: &str) -> Vec<usize> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| l.starts_with("- ") || *l == "-")
        .map(|(i, _)| i + 1)
        .collect()
}

fn yaml_rows(path: &Path, text: &str) -> Result<Vec<Row>, InputError> {
    let items: Vec<serde_json::Value> = serde_yaml_ng::from_str(text).map_err(|e| {
        let (line, col) = e
            .location()
            .map(|l| (l.line(), l.column()))
            .unwrap_or((1, 1));
        err_at(path, line, col, format!("{e}"))
            .with_hint("the file is a list of cases: `- question: …` then `  expect_any: [a, b]`")
    })?;
    let lines = yaml_item_lines(text);
    let mut rows = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let line = lines.get(i).copied().unwrap_or(1);
        let serde_json::Value::Object(obj) = item else {
            return Err(err_at(
                path,
                line,
                1,
                "each item must be a mapping of column: value",
            ));
        };
        let mut cells = Vec::with_capacity(obj.len());
        for (k, v) in obj {
            let cell = json_cell(path, line, 3, &k, v)?;
            cells.push((k, 3, cell));
        }
        rows.push(Row { line, cells });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csv(text: &str) -> Result<Vec<Case>, String> {
        parse(Path::new("d/cases.csv"), text, Format::Csv).map_err(|e| e.to_string())
    }

    #[test]
    fn csv_columns_become_vars_and_checks() {
        let cases = csv("name,question,expect_any,expect_none,expect_regex\nuk,\"Capital of England, please\",London|Londres,Paris,^\\w+\n,Capital of France?,Paris,,\n").unwrap();
        assert_eq!(cases.len(), 2);
        assert_eq!(cases[0].name, "uk");
        assert_eq!(cases[0].vars["question"], "Capital of England, please");
        assert_eq!(cases[0].expect.any, ["London", "Londres"]);
        assert_eq!(cases[0].expect.none, ["Paris"]);
        assert_eq!(cases[0].expect.regex.as_deref(), Some("^\\w+"));
        assert_eq!(cases[1].name, "cases.csv:3");
        assert!(cases[1].expect.none.is_empty());
        assert!(cases[1].expect.regex.is_none());
        assert!(cases[1].expect.check("Paris!")[0].pass);
    }

    #[test]
    fn csv_list_escapes() {
        assert_eq!(split_list(r"a\|b|c\\|d"), ["a|b", "c\\", "d"]);
        assert_eq!(split_list("one"), ["one"]);
    }

    #[test]
    fn csv_bad_rows_name_line_and_column() {
        let e = csv("q,expect_regex\nfine,x\nbad,(unclosed\n").unwrap_err();
        assert!(e.starts_with("d/cases.csv:3:5: invalid regex"), "{e}");
        let e = csv("q,expect_any\na,b\nc,d,e\n").unwrap_err();
        assert_eq!(
            e,
            "d/cases.csv:3:5: this row has 3 fields, the header has 2\n  hint: quote cells that contain commas: \"a, b\""
        );
        let e = csv("q,expect_sometimes\na,b\n").unwrap_err();
        assert!(
            e.starts_with("d/cases.csv:2:3: unknown check column \"expect_sometimes\""),
            "{e}"
        );
        let e = csv("q,q\na,b\n").unwrap_err();
        assert!(
            e.starts_with("d/cases.csv:1:3: duplicate column \"q\""),
            "{e}"
        );
        let e = csv("name,q\nx,1\nx,2\n").unwrap_err();
        assert!(e.contains("duplicate case name \"x\""), "{e}");
    }

    #[test]
    fn jsonl_arrays_are_lists_strings_are_one_item() {
        let text = "{\"q\": \"a|b\", \"n\": 3, \"expect_any\": [\"x\", \"y\"], \"expect_all\": \"p|q\"}\n\n{\"q\": \"z\", \"turns\": [{\"user\": \"hi\"}, {\"assistant\": \"hello\"}, {\"user\": \"{{q}}?\"}]}\n";
        let cases = parse(Path::new("c.jsonl"), text, Format::Jsonl).unwrap();
        assert_eq!(cases[0].vars["q"], "a|b");
        assert_eq!(cases[0].vars["n"], "3");
        assert_eq!(cases[0].expect.any, ["x", "y"]);
        assert_eq!(cases[0].expect.all, ["p|q"]);
        assert_eq!(cases[1].name, "c.jsonl:3");
        assert_eq!(cases[1].turns.len(), 3);
    }

    #[test]
    fn jsonl_bad_rows_name_line_and_column() {
        let e = parse(
            Path::new("c.jsonl"),
            "{\"q\": 1}\n{\"q\": 2,}\n",
            Format::Jsonl,
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("c.jsonl:2:"), "{e}");
        assert!(e.contains("not a JSON object"), "{e}");
        let e = parse(
            Path::new("c.jsonl"),
            "{\"q\": 1}\n{\"q\": 2, \"ctx\": {\"a\": 1}}\n",
            Format::Jsonl,
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("c.jsonl:2:10: \"ctx\" is an object"), "{e}");
        let e = parse(
            Path::new("c.jsonl"),
            "{\"turns\": [{\"user\": \"a\"}, {\"assistant\": \"b\"}]}\n",
            Format::Jsonl,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("the last turn must be a user turn"), "{e}");
    }

    #[test]
    fn yaml_rows_and_errors() {
        let text = "- name: uk\n  question: Capital of England?\n  expect_any: [London]\n- question: Capital of Peru?\n  expect_any:\n    - Lima\n    - lima\n";
        let cases = parse(Path::new("c.yaml"), text, Format::Yaml).unwrap();
        assert_eq!(cases[0].name, "uk");
        assert_eq!(cases[1].name, "c.yaml:4");
        assert_eq!(cases[1].expect.any, ["Lima", "lima"]);
        let e = parse(
            Path::new("c.yaml"),
            "- q: a\n- q: [unclosed\n",
            Format::Yaml,
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("c.yaml:"), "{e}");
        let e = parse(
            Path::new("c.yaml"),
            "- q: a\n- q: b\n  expect_regex: \"(\"\n",
            Format::Yaml,
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("c.yaml:2:3: invalid regex"), "{e}");
    }

    #[test]
    fn ten_thousand_rows_load_fast() {
        let mut text = String::from("question,expect_any,expect_regex\n");
        for i in 0..10_000 {
            text.push_str(&format!(
                "\"What is {i} + 1, roughly?\",{}|about {},^\\d+\n",
                i + 1,
                i + 1
            ));
        }
        let t0 = std::time::Instant::now();
        let cases = csv(&text).unwrap();
        let took = t0.elapsed();
        assert_eq!(cases.len(), 10_000);
        eprintln!("10,000 CSV rows: {took:?}");
        // About 0.15 s alone on this machine; the bound leaves room for a loaded test run
        // and still catches anything quadratic.
        assert!(took.as_secs() < 5, "{took:?}");
        let mut jl = String::new();
        for i in 0..10_000 {
            jl.push_str(&format!(
                "{{\"question\": \"What is {i} + 1?\", \"expect_any\": [\"{}\"]}}\n",
                i + 1
            ));
        }
        let t0 = std::time::Instant::now();
        let cases = parse(Path::new("c.jsonl"), &jl, Format::Jsonl).unwrap();
        eprintln!("10,000 JSONL rows: {:?}", t0.elapsed());
        assert_eq!(cases.len(), 10_000);
        assert!(t0.elapsed().as_secs() < 5);
    }
}
