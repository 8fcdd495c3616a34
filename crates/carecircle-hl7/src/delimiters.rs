//! The encoding characters a message declares in MSH-1 and MSH-2, and the escape sequences
//! (`\F\`, `\S\`, `\T\`, `\R\`, `\E\`, `\Xhh…\`) that let values contain them.

use thiserror::Error;

/// The delimiters of one message, read from MSH-1 (field separator) and MSH-2 (component,
/// repetition, escape and subcomponent characters, and since v2.7 an optional truncation
/// character).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delimiters {
    /// Separates fields (MSH-1), `|` by convention.
    pub field: char,
    /// Separates components, `^` by convention.
    pub component: char,
    /// Separates repetitions of a field, `~` by convention.
    pub repetition: char,
    /// Starts and ends an escape sequence, `\` by convention.
    pub escape: char,
    /// Separates subcomponents, `&` by convention.
    pub subcomponent: char,
    /// The v2.7 truncation character (`#`), when MSH-2 declares one.
    pub truncation: Option<char>,
}

impl Default for Delimiters {
    fn default() -> Self {
        Delimiters { field: '|', component: '^', repetition: '~', escape: '\\', subcomponent: '&', truncation: None }
    }
}

/// Why MSH-1/MSH-2 do not declare a usable set of delimiters.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DelimiterError {
    /// MSH-2 must hold four encoding characters (five from v2.7).
    #[error("MSH-2 must hold 4 or 5 encoding characters, found {found}")]
    WrongCount {
        /// How many characters MSH-2 held.
        found: usize,
    },
    /// Each delimiter must be different from the others.
    #[error("the encoding characters must all differ, `{0}` is repeated")]
    Repeated(char),
    /// Letters, digits, whitespace and control characters cannot be delimiters.
    #[error("`{0:?}` cannot be used as a delimiter")]
    Unusable(char),
}

impl Delimiters {
    /// Builds the delimiters from the field separator and the text of MSH-2.
    pub fn from_msh(field: char, encoding_characters: &str) -> Result<Self, DelimiterError> {
        let chars: Vec<char> = encoding_characters.chars().collect();
        if !(4..=5).contains(&chars.len()) {
            return Err(DelimiterError::WrongCount { found: chars.len() });
        }
        let delimiters = Delimiters {
            field,
            component: chars[0],
            repetition: chars[1],
            escape: chars[2],
            subcomponent: chars[3],
            truncation: chars.get(4).copied(),
        };
        let all = delimiters.all();
        for (i, c) in all.iter().enumerate() {
            if c.is_alphanumeric() || c.is_whitespace() || c.is_control() {
                return Err(DelimiterError::Unusable(*c));
            }
            if all[..i].contains(c) {
                return Err(DelimiterError::Repeated(*c));
            }
        }
        Ok(delimiters)
    }

    fn all(&self) -> Vec<char> {
        let mut all = vec![self.field, self.component, self.repetition, self.escape, self.subcomponent];
        all.extend(self.truncation);
        all
    }

    /// The text of MSH-2 for these delimiters (`^~\&`).
    pub fn encoding_characters(&self) -> String {
        let mut text: String = [self.component, self.repetition, self.escape, self.subcomponent].iter().collect();
        text.extend(self.truncation);
        text
    }

    /// Decodes the escape sequences of one leaf value (a subcomponent's text). Escape sequences
    /// this parser does not interpret (character-set switches `\C…\`/`\M…\`, highlighting
    /// `\H\`/`\N\` and formatting commands other than `\.br\`) are removed or kept as text as
    /// the standard allows a receiver to do: highlighting is dropped, the rest kept literally.
    pub fn unescape(&self, raw: &str) -> String {
        if !raw.contains(self.escape) {
            return raw.to_owned();
        }
        let mut out = String::with_capacity(raw.len());
        let mut rest = raw;
        while let Some(start) = rest.find(self.escape) {
            out.push_str(&rest[..start]);
            let after = &rest[start + self.escape.len_utf8()..];
            let Some(end) = after.find(self.escape) else {
                // No closing escape character: the rest is literal text.
                out.push_str(&rest[start..]);
                return out;
            };
            let sequence = &after[..end];
            match self.decode_sequence(sequence) {
                Some(decoded) => out.push_str(&decoded),
                None => {
                    out.push(self.escape);
                    out.push_str(sequence);
                    out.push(self.escape);
                }
            }
            rest = &after[end + self.escape.len_utf8()..];
        }
        out.push_str(rest);
        out
    }

    fn decode_sequence(&self, sequence: &str) -> Option<String> {
        match sequence {
            "F" => Some(self.field.to_string()),
            "S" => Some(self.component.to_string()),
            "T" => Some(self.subcomponent.to_string()),
            "R" => Some(self.repetition.to_string()),
            "E" => Some(self.escape.to_string()),
            "P" => self.truncation.map(|c| c.to_string()),
            "H" | "N" => Some(String::new()),
            ".br" => Some("\n".to_owned()),
            _ => {
                let hex = sequence.strip_prefix('X')?;
                decode_hex_text(hex)
            }
        }
    }

    /// Escapes one leaf value so that it can be written between these delimiters: the
    /// delimiters become `\F\`, `\S\`, `\T\`, `\R\`, `\E\` (and `\P\`), line breaks `\X0D\` and
    /// `\X0A\`, so a value never ends its field or segment early.
    pub fn escape(&self, value: &str) -> String {
        let mut out = String::with_capacity(value.len());
        for c in value.chars() {
            let code = if c == self.field {
                Some("F")
            } else if c == self.component {
                Some("S")
            } else if c == self.subcomponent {
                Some("T")
            } else if c == self.repetition {
                Some("R")
            } else if c == self.escape {
                Some("E")
            } else if Some(c) == self.truncation {
                Some("P")
            } else if c == '\r' {
                Some("X0D")
            } else if c == '\n' {
                Some("X0A")
            } else {
                None
            };
            match code {
                Some(code) => {
                    out.push(self.escape);
                    out.push_str(code);
                    out.push(self.escape);
                }
                None => out.push(c),
            }
        }
        out
    }
}

/// Decodes the hexadecimal bytes of a `\Xhh…\` sequence: as UTF-8 when they form it, otherwise
/// as ISO 8859-1 (one character per byte), the two encodings HL7 v2 feeds use in practice.
fn decode_hex_text(hex: &str) -> Option<String> {
    if hex.is_empty() || (hex.len() & 1) == 1 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let bytes: Vec<u8> =
        (0..hex.len()).step_by(2).filter_map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok()).collect();
    Some(bytes_to_text(&bytes))
}

/// Turns message bytes into text: UTF-8 when valid, otherwise ISO 8859-1, which maps every byte
/// to a character so no input is refused for its encoding.
pub(crate) fn bytes_to_text(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) => text.to_owned(),
        Err(_) => bytes.iter().map(|&b| char::from(b)).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_escapes_decode() {
        let d = Delimiters::default();
        assert_eq!(d.unescape(r"A\F\B\S\C\T\D\R\E\E\F"), r"A|B^C&D~E\F");
        assert_eq!(d.unescape(r"caf\XC3A9\"), "café");
        assert_eq!(d.unescape(r"caf\XE9\"), "café");
        assert_eq!(d.unescape(r"line\.br\two"), "line\ntwo");
        assert_eq!(d.unescape(r"\H\bold\N\"), "bold");
    }

    #[test]
    fn malformed_escapes_stay_literal() {
        let d = Delimiters::default();
        assert_eq!(d.unescape(r"50\% off"), r"50\% off");
        assert_eq!(d.unescape(r"\Zcustom\"), r"\Zcustom\");
        assert_eq!(d.unescape(r"\XZZ\"), r"\XZZ\");
        assert_eq!(d.unescape(r"\X0\"), r"\X0\");
        assert_eq!(d.unescape(r"\\"), r"\\");
    }

    #[test]
    fn escape_then_unescape_is_identity_with_other_delimiters() {
        let d = Delimiters::from_msh('#', "*!@$%").unwrap();
        let value = "a#b*c!d@e$f%g\r\nh|^~\\&";
        assert_eq!(d.unescape(&d.escape(value)), value);
        assert!(!d.escape(value).contains(['#', '*', '!', '$', '%', '\r', '\n']));
    }

    #[test]
    fn unusable_encoding_characters_are_refused() {
        assert_eq!(Delimiters::from_msh('|', "^~\\"), Err(DelimiterError::WrongCount { found: 3 }));
        assert_eq!(Delimiters::from_msh('|', "^~\\^"), Err(DelimiterError::Repeated('^')));
        assert_eq!(Delimiters::from_msh('|', "^|\\&"), Err(DelimiterError::Repeated('|')));
        assert_eq!(Delimiters::from_msh('|', "^a\\&"), Err(DelimiterError::Unusable('a')));
        assert_eq!(Delimiters::from_msh('|', "^ \\&"), Err(DelimiterError::Unusable(' ')));
    }
}
