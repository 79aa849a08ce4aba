//! Log lines as plain text: terminal colour codes (ANSI escape sequences) and other control
//! characters removed, so status, `kubectl describe` and a piped `kubectl codebuild logs`
//! show the words and nothing that moves a terminal's cursor.

/// `line` without escape sequences (CSI `ESC [ ... final`, OSC `ESC ] ... BEL|ESC \`,
/// character set designations `ESC ( x`, and two-character `ESC x`) and without control characters other than tab.
pub fn strip(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => match chars.next() {
                // CSI: parameters and intermediates, then one final byte in @..~.
                Some('[') => {
                    for c in chars.by_ref() {
                        if ('@'..='~').contains(&c) {
                            break;
                        }
                    }
                }
                // OSC (a terminal title, a hyperlink): up to BEL or ST (ESC \).
                Some(']') => {
                    while let Some(c) = chars.next() {
                        if c == '\u{7}' {
                            break;
                        }
                        if c == '\u{1b}' && chars.peek() == Some(&'\\') {
                            chars.next();
                            break;
                        }
                    }
                }
                // A character set designation: ESC ( B and the like.
                Some('(' | ')' | '*' | '+') => {
                    chars.next();
                }
                _ => {}
            },
            // The 8-bit CSI.
            '\u{9b}' => {
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            '\t' => out.push(c),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::strip;

    #[test]
    fn colours_and_cursor_moves_go_words_stay() {
        assert_eq!(
            strip("\u{1b}[31mFAIL\u{1b}[0m src/a.test.js"),
            "FAIL src/a.test.js"
        );
        assert_eq!(strip("\u{1b}[1;32m✓\u{1b}[39;49m ok"), "✓ ok");
        assert_eq!(strip("50%\r\u{1b}[2K100%"), "50%100%");
        assert_eq!(
            strip("\u{1b}]8;;https://x\u{7}link\u{1b}]8;;\u{1b}\\ done"),
            "link done"
        );
        assert_eq!(strip("a\tb\u{0}c\u{7}"), "a\tbc");
        assert_eq!(strip("Привет 日本 😀"), "Привет 日本 😀");
        assert_eq!(strip("\u{1b}(Bplain"), "plain");
        assert_eq!(strip("cut \u{1b}["), "cut ");
    }
}
