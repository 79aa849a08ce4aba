//! The commands a build runs, from its buildspec: an inline buildspec (`buildspecOverride` or
//! the project's `source.buildspec` holding YAML) gives its `phases.<phase>.commands`; a path or
//! an S3 object (which the simulator cannot read) gives plausible default commands.
//!
//! The YAML reader covers what buildspecs use: block mappings and sequences (also `- key: v`
//! items), plain, single- and double-quoted scalars (plain ones may continue on more-indented
//! lines), `|` and `>` block scalars with `-`/`+` chomping, `[a, b]` flow sequences and
//! comments. Anchors, aliases, tags and flow mappings are read as plain text.

use crate::lifecycle::PhaseType;

/// The phases whose commands come from the buildspec, in run order.
pub const COMMAND_PHASES: [PhaseType; 4] = [
    PhaseType::Install,
    PhaseType::PreBuild,
    PhaseType::Build,
    PhaseType::PostBuild,
];

/// Where the agent reads an inline buildspec from (its log names this path).
pub const INLINE_LOCATION: &str = "/codebuild/readonly/buildspec.yml";

/// Where a build's buildspec comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// Inline YAML: its commands are the ones the build runs.
    Inline,
    /// A path in the source (default `buildspec.yml`): default commands.
    Path(String),
    /// An S3 object ARN: default commands.
    S3(String),
}

/// What the build runs, as far as the simulator knows.
#[derive(Clone, Debug, PartialEq)]
pub struct Buildspec {
    pub location: Location,
    /// Commands of INSTALL, PRE_BUILD, BUILD and POST_BUILD (phases without commands are
    /// absent), in run order.
    pub phases: Vec<(PhaseType, Vec<String>)>,
}

/// The commands a phase runs when the buildspec is not inline.
pub fn default_commands(phase: PhaseType) -> &'static [&'static str] {
    match phase {
        PhaseType::Install => &["make deps"],
        PhaseType::PreBuild => &["make lint"],
        PhaseType::Build => &["make", "make test"],
        PhaseType::PostBuild => &["make package"],
        _ => &[],
    }
}

impl Buildspec {
    /// The buildspec of a build whose merged `source.buildspec` is `buildspec`.
    pub fn resolve(buildspec: Option<&str>) -> Buildspec {
        let given = buildspec.map(str::trim).filter(|s| !s.is_empty());
        let location = match given {
            Some(yaml) if yaml.contains('\n') => {
                return Buildspec {
                    location: Location::Inline,
                    phases: parse(yaml)
                        .map(|root| phase_commands(&root))
                        .unwrap_or_default(),
                };
            }
            Some(arn) if arn.starts_with("arn:") => Location::S3(arn.to_string()),
            Some(path) => Location::Path(path.trim_start_matches("./").to_string()),
            None => Location::Path("buildspec.yml".to_string()),
        };
        let phases = COMMAND_PHASES
            .into_iter()
            .map(|p| {
                let commands = default_commands(p).iter().map(|c| c.to_string());
                (p, commands.collect())
            })
            .collect();
        Buildspec { location, phases }
    }

    /// The path the agent's log names ("YAML location is ..."); `src_dir` is the build's
    /// CODEBUILD_SRC_DIR.
    pub fn location_in(&self, src_dir: &str) -> String {
        match &self.location {
            Location::Inline => INLINE_LOCATION.to_string(),
            Location::Path(path) => format!("{src_dir}/{path}"),
            Location::S3(arn) => arn.clone(),
        }
    }

    /// The commands of `phase` (empty when it has none).
    pub fn commands(&self, phase: PhaseType) -> &[String] {
        self.phases
            .iter()
            .find(|(p, _)| *p == phase)
            .map_or(&[], |(_, c)| c.as_slice())
    }

    /// The command that fails when `phase` is made to fail: its last command, or the phase's
    /// default command when the buildspec gives it none. None outside the command phases.
    pub fn failing_command(&self, phase: PhaseType) -> Option<String> {
        self.commands(phase)
            .last()
            .cloned()
            .or_else(|| default_commands(phase).last().map(|c| c.to_string()))
    }
}

/// The commands of each known phase in a parsed buildspec.
fn phase_commands(root: &Node) -> Vec<(PhaseType, Vec<String>)> {
    let Some(phases) = root.get("phases") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for phase in COMMAND_PHASES {
        let name = phase.as_str().to_ascii_lowercase();
        let Some(Node::Seq(items)) = phases.get(&name).and_then(|p| p.get("commands")) else {
            continue;
        };
        let commands: Vec<String> = items.iter().filter_map(Node::as_command).collect();
        if !commands.is_empty() {
            out.push((phase, commands));
        }
    }
    out
}

/// A YAML node: scalars are kept as text.
#[derive(Clone, Debug, PartialEq)]
pub enum Node {
    Scalar(String),
    Seq(Vec<Node>),
    Map(Vec<(String, Node)>),
}

impl Node {
    /// The value of `key` in a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match self {
            Node::Map(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// A sequence item as a shell command (`- a: b` was meant as the text "a: b").
    fn as_command(&self) -> Option<String> {
        match self {
            Node::Scalar(s) if !s.is_empty() => Some(s.clone()),
            Node::Map(entries) if entries.len() == 1 => match &entries[0] {
                (k, Node::Scalar(v)) => Some(format!("{k}: {v}")),
                _ => None,
            },
            _ => None,
        }
    }
}

/// Parses a YAML document (the subset in the module doc). None when it holds nothing.
pub fn parse(src: &str) -> Option<Node> {
    let mut p = Parser {
        lines: src.lines().collect(),
        pos: 0,
    };
    p.node(0)
}

struct Parser<'a> {
    lines: Vec<&'a str>,
    pos: usize,
}

fn indent_of(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

/// A line without its indentation, its comment and trailing blanks.
fn content(line: &str) -> &str {
    let text = line.trim_start_matches(' ');
    let (mut single, mut double) = (false, false);
    let mut prev = ' ';
    for (i, c) in text.char_indices() {
        match c {
            '\'' if !double => single = !single,
            '"' if !single && prev != '\\' => double = !double,
            '#' if !single && !double && prev.is_whitespace() => return text[..i].trim_end(),
            _ => {}
        }
        prev = c;
    }
    text.trim_end()
}

fn is_item(text: &str) -> bool {
    text == "-" || text.starts_with("- ")
}

/// Splits `key: value` (the colon outside quotes, followed by a blank or the end).
fn split_key(text: &str) -> Option<(String, &str)> {
    let (mut single, mut double) = (false, false);
    let bytes = text.as_bytes();
    for (i, c) in text.char_indices() {
        match c {
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            ':' if !single && !double => {
                let next = bytes.get(i + 1);
                if next.is_none_or(|b| *b == b' ' || *b == b'\t') && i > 0 {
                    return Some((scalar(&text[..i]), text[i + 1..].trim()));
                }
            }
            _ => {}
        }
    }
    None
}

/// A one-line scalar: quotes removed and escapes applied.
fn scalar(text: &str) -> String {
    let t = text.trim();
    if t.len() >= 2 && t.starts_with('\'') && t.ends_with('\'') {
        return t[1..t.len() - 1].replace("''", "'");
    }
    if t.len() >= 2 && t.starts_with('"') && t.ends_with('"') {
        return unescape(&t[1..t.len() - 1]);
    }
    t.to_string()
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('0') => out.push('\0'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

/// `[a, 'b, c', d]` as a sequence of scalars.
fn flow_seq(text: &str) -> Node {
    let inner = text.trim().trim_start_matches('[').trim_end_matches(']');
    let mut items = Vec::new();
    let (mut single, mut double, mut start) = (false, false, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            ',' if !single && !double => {
                items.push(inner[start..i].to_string());
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(inner[start..].to_string());
    Node::Seq(
        items
            .iter()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .map(|s| Node::Scalar(scalar(s)))
            .collect(),
    )
}

impl Parser<'_> {
    /// The next non-blank line's (indent, content), without consuming it.
    fn peek(&mut self) -> Option<(usize, &str)> {
        while let Some(line) = self.lines.get(self.pos) {
            let text = content(line);
            if !text.is_empty() {
                return Some((indent_of(line), text));
            }
            self.pos += 1;
        }
        None
    }

    fn node(&mut self, min_indent: usize) -> Option<Node> {
        let (indent, text) = self.peek()?;
        if indent < min_indent {
            return None;
        }
        if is_item(text) {
            return Some(self.seq(indent));
        }
        if let Some((key, rest)) = split_key(text) {
            let rest = rest.to_string();
            self.pos += 1;
            return Some(self.map(indent, Some((key, rest))));
        }
        let first = text.to_string();
        self.pos += 1;
        Some(Node::Scalar(self.plain(indent, &first)))
    }

    fn seq(&mut self, indent: usize) -> Node {
        let mut items = Vec::new();
        while let Some((i, text)) = self.peek() {
            if i != indent || !is_item(text) {
                break;
            }
            let after_dash = &text[1..];
            let rest = after_dash.trim_start().to_string();
            let inner_indent = indent + 1 + (after_dash.len() - after_dash.trim_start().len());
            self.pos += 1;
            let item = if rest.is_empty() {
                self.node(indent + 1)
                    .unwrap_or_else(|| Node::Scalar(String::new()))
            } else if let Some((key, value)) = split_key(&rest) {
                let value = value.to_string();
                self.map(inner_indent, Some((key, value)))
            } else {
                self.value(&rest, indent)
            };
            items.push(item);
        }
        Node::Seq(items)
    }

    /// A mapping at `indent`; `first` is an entry already read from the current line.
    fn map(&mut self, indent: usize, first: Option<(String, String)>) -> Node {
        let mut entries = Vec::new();
        if let Some((key, rest)) = first {
            let value = self.value_after_key(&rest, indent);
            entries.push((key, value));
        }
        while let Some((i, text)) = self.peek() {
            if i != indent || is_item(text) {
                break;
            }
            let Some((key, rest)) = split_key(text) else {
                break;
            };
            let rest = rest.to_string();
            self.pos += 1;
            let value = self.value_after_key(&rest, indent);
            entries.push((key, value));
        }
        Node::Map(entries)
    }

    /// The value of a key at `indent` whose line continues with `rest`.
    fn value_after_key(&mut self, rest: &str, indent: usize) -> Node {
        if !rest.is_empty() {
            return self.value(rest, indent);
        }
        match self.peek() {
            Some((i, _)) if i > indent => self
                .node(indent + 1)
                .unwrap_or_else(|| Node::Scalar(String::new())),
            // YAML allows a sequence at the key's own indentation.
            Some((i, text)) if i == indent && is_item(text) => self.seq(indent),
            _ => Node::Scalar(String::new()),
        }
    }

    /// An inline value (after `key:` or `- `) of a node at `indent`.
    fn value(&mut self, text: &str, indent: usize) -> Node {
        if let Some(header) = text.strip_prefix('|') {
            return Node::Scalar(self.block(indent, false, header));
        }
        if let Some(header) = text.strip_prefix('>') {
            return Node::Scalar(self.block(indent, true, header));
        }
        if text.starts_with('[') {
            return flow_seq(text);
        }
        Node::Scalar(self.plain(indent, text))
    }

    /// A plain or quoted scalar that may continue on lines indented deeper than `indent`.
    fn plain(&mut self, indent: usize, first: &str) -> String {
        let mut text = first.to_string();
        while let Some((i, next)) = self.peek() {
            if i <= indent || is_item(next) || split_key(next).is_some() {
                break;
            }
            text.push(' ');
            text.push_str(next);
            self.pos += 1;
        }
        scalar(&text)
    }

    /// A `|` (literal) or `>` (folded) block scalar under a node at `indent`.
    fn block(&mut self, indent: usize, folded: bool, header: &str) -> String {
        let mut raw: Vec<&str> = Vec::new();
        while let Some(line) = self.lines.get(self.pos) {
            if !line.trim().is_empty() && indent_of(line) <= indent {
                break;
            }
            raw.push(line);
            self.pos += 1;
        }
        while raw.last().is_some_and(|l| l.trim().is_empty()) {
            raw.pop();
        }
        let block_indent = raw
            .iter()
            .find(|l| !l.trim().is_empty())
            .map_or(0, |l| indent_of(l));
        let body: Vec<&str> = raw
            .iter()
            .map(|l| l.get(block_indent..).unwrap_or("").trim_end_matches('\r'))
            .collect();
        let mut text = if folded { fold(&body) } else { body.join("\n") };
        if !header.contains('-') && !text.is_empty() {
            text.push('\n');
        }
        text
    }
}

/// Folds block lines: single line breaks become spaces, blank lines stay line breaks.
fn fold(lines: &[&str]) -> String {
    let mut out = String::new();
    let mut pending_break = false;
    for line in lines {
        if line.is_empty() {
            out.push('\n');
            pending_break = false;
            continue;
        }
        if pending_break {
            out.push(' ');
        }
        out.push_str(line);
        pending_break = true;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"version: 0.2
env:
  variables:
    CI: "true"   # a comment
  exported-variables:
    - TEST_SUMMARY
phases:
  install:
    runtime-versions:
      nodejs: 20
    commands:
      - npm ci
  pre_build:
    commands: [ "echo a, b", 'it''s' ]
  build:
    commands:
      - npm test -- --reporters=default --reporters=jest-junit
      - export TEST_SUMMARY="$(cat test-summary.txt)"   # trailing
      - |
        for f in a b; do
          echo "$f # not a comment"
        done
      - echo "key: value"
      - >-
        folded
        command
  post_build:
    commands:
    - echo done
      continued
reports:
  unit-tests:
    files:
      - junit.xml
"#;

    #[test]
    fn reads_the_commands_of_each_phase() {
        let spec = Buildspec::resolve(Some(EXAMPLE));
        assert_eq!(spec.location, Location::Inline);
        assert_eq!(spec.location_in("/src"), INLINE_LOCATION);
        assert_eq!(spec.commands(PhaseType::Install), ["npm ci"]);
        assert_eq!(spec.commands(PhaseType::PreBuild), ["echo a, b", "it's"]);
        assert_eq!(
            spec.commands(PhaseType::Build),
            [
                "npm test -- --reporters=default --reporters=jest-junit",
                "export TEST_SUMMARY=\"$(cat test-summary.txt)\"",
                "for f in a b; do\n  echo \"$f # not a comment\"\ndone\n",
                "echo \"key: value\"",
                "folded command",
            ]
        );
        assert_eq!(spec.commands(PhaseType::PostBuild), ["echo done continued"]);
        assert_eq!(
            spec.failing_command(PhaseType::PostBuild).as_deref(),
            Some("echo done continued")
        );
    }

    #[test]
    fn other_members_parse_too() {
        let root = parse(EXAMPLE).unwrap_or(Node::Seq(vec![]));
        assert_eq!(root.get("version"), Some(&Node::Scalar("0.2".into())));
        let vars = root.get("env").and_then(|e| e.get("variables"));
        assert_eq!(
            vars.and_then(|v| v.get("CI")),
            Some(&Node::Scalar("true".into()))
        );
        let files = root
            .get("reports")
            .and_then(|r| r.get("unit-tests"))
            .and_then(|u| u.get("files"));
        assert_eq!(
            files,
            Some(&Node::Seq(vec![Node::Scalar("junit.xml".into())]))
        );
    }

    #[test]
    fn sequences_of_mappings() {
        let root =
            parse("items:\n  - name: a\n    value: 1\n  - name: b\n").unwrap_or(Node::Seq(vec![]));
        let Some(Node::Seq(items)) = root.get("items") else {
            panic!("items: {root:?}");
        };
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].get("value"), Some(&Node::Scalar("1".into())));
        assert_eq!(items[1].get("name"), Some(&Node::Scalar("b".into())));
    }

    #[test]
    fn paths_and_missing_buildspecs_get_defaults() {
        let spec = Buildspec::resolve(Some("ci/buildspec.yml"));
        assert_eq!(
            spec.location_in("/codebuild/output/src1/src"),
            "/codebuild/output/src1/src/ci/buildspec.yml"
        );
        assert_eq!(spec.commands(PhaseType::Build), ["make", "make test"]);
        let none = Buildspec::resolve(None);
        assert_eq!(none.location_in("/s"), "/s/buildspec.yml");
        let s3 = Buildspec::resolve(Some("arn:aws:s3:::bucket/spec.yml"));
        assert_eq!(s3.location_in("/s"), "arn:aws:s3:::bucket/spec.yml");
        assert_eq!(s3.phases.len(), 4);
    }

    #[test]
    fn inline_buildspec_without_a_phase_fails_with_its_default_command() {
        let spec = Buildspec::resolve(Some(
            "version: 0.2\nphases:\n  build:\n    commands:\n      - echo simulated\n",
        ));
        assert_eq!(spec.phases.len(), 1);
        assert!(spec.commands(PhaseType::Install).is_empty());
        assert_eq!(
            spec.failing_command(PhaseType::Install).as_deref(),
            Some("make deps")
        );
        assert_eq!(
            spec.failing_command(PhaseType::Build).as_deref(),
            Some("echo simulated")
        );
        assert_eq!(spec.failing_command(PhaseType::DownloadSource), None);
    }

    #[test]
    fn odd_input_does_not_panic() {
        for src in [
            "",
            "\n\n",
            ":",
            "- ",
            "a: |",
            "a:\n  - [",
            "\"unterminated",
            "a: b: c\n  - x",
        ] {
            let _ = parse(src);
            let _ = Buildspec::resolve(Some(&format!("{src}\nphases:")));
        }
    }
}
