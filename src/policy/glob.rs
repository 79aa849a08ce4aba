//! Glob patterns of policies: `*` matches any characters (`/` and `:` included), `?` exactly
//! one, everything else itself. The same patterns are rendered as anchored RE2 regular
//! expressions for the admission policy's CEL (`matches()`), so both checks agree.

/// Whether `text` matches `pattern` as a whole.
pub fn matches(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    // Iterative matching with one backtrack point (the last `*`): linear in practice,
    // O(len(p) * len(t)) at worst, never exponential.
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some('?') => {
                pi += 1;
                ti += 1;
            }
            Some(c) if *c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Whether `text` matches any of `patterns`.
pub fn any_matches(patterns: &[String], text: &str) -> bool {
    patterns.iter().any(|p| matches(p, text))
}

/// The pattern as an anchored RE2 expression: `*` is `.*`, `?` is `.`, every other
/// character literal. `(?s)` lets `.` match newlines too, as `*` does here.
pub fn to_regex(pattern: &str) -> String {
    let mut re = String::from("^(?s)");
    for c in pattern.chars() {
        match c {
            '*' => re.push_str(".*"),
            '?' => re.push('.'),
            c if "\\.+()[]{}|^$".contains(c) => {
                re.push('\\');
                re.push(c);
            }
            c => re.push(c),
        }
    }
    re.push('$');
    re
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_and_wildcards() {
        assert!(matches("app", "app"));
        assert!(!matches("app", "apps"));
        assert!(!matches("app", "ap"));
        assert!(matches("app-*", "app-"));
        assert!(matches("app-*", "app-web"));
        assert!(!matches("app-*", "xapp-web"));
        assert!(matches("*", ""));
        assert!(matches("*-build", "team-a-build"));
        assert!(matches("a*b*c", "aXXbYYc"));
        assert!(!matches("a*b*c", "aXXbYY"));
        assert!(matches("a?c", "abc"));
        assert!(!matches("a?c", "ac"));
        assert!(matches(
            "arn:aws:codebuild:*:123456789012:project/team-a-*",
            "arn:aws:codebuild:eu-west-1:123456789012:project/team-a-web"
        ));
        assert!(!matches(
            "arn:aws:codebuild:*:123456789012:project/team-a-*",
            "arn:aws:codebuild:eu-west-1:999999999999:project/team-a-web"
        ));
        // Regex metacharacters are literal.
        assert!(matches("a.b", "a.b"));
        assert!(!matches("a.b", "axb"));
    }

    #[test]
    fn regex_escapes_metacharacters() {
        assert_eq!(to_regex("app-*"), "^(?s)app-.*$");
        assert_eq!(to_regex("a.b?"), "^(?s)a\\.b.$");
        assert_eq!(
            to_regex("arn:aws:iam::1:role/x+y"),
            "^(?s)arn:aws:iam::1:role/x\\+y$"
        );
        assert_eq!(
            to_regex("(a|b)[c]{d}^$\\"),
            "^(?s)\\(a\\|b\\)\\[c\\]\\{d\\}\\^\\$\\\\$"
        );
    }
}
