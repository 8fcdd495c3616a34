//! The HL7 v2 message tree (segments, fields, repetitions, components, subcomponents), its
//! parser and its serialiser.
//!
//! The parser is lenient where real feeds vary and strict where guessing would corrupt data:
//! segments may end in CR, LF or CRLF, bytes that are not UTF-8 are read as ISO 8859-1, unknown
//! escape sequences are kept as text; but a message must start with an MSH segment declaring
//! usable delimiters, and every segment must have a well-formed id.

use std::fmt;

use thiserror::Error;

use crate::delimiters::{bytes_to_text, DelimiterError, Delimiters};

/// At most this many delimiters (field, repetition, component, subcomponent) in one message.
/// Each becomes a node of the tree (tens of bytes), so a 1 MiB frame of `~` would otherwise cost
/// about a hundred times its size; real ADT messages hold a few thousand.
pub const MAX_ELEMENTS: usize = 100_000;

/// Why bytes could not be read as an HL7 v2 message.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseError {
    /// Nothing but whitespace was received.
    #[error("the message is empty")]
    Empty,
    /// The first segment is not MSH (batches with FHS/BHS are not accepted).
    #[error("the message must start with an MSH segment")]
    MissingHeader,
    /// MSH-1/MSH-2 do not declare usable delimiters.
    #[error("MSH-2: {0}")]
    Delimiters(#[from] DelimiterError),
    /// The message has more delimiters than [`MAX_ELEMENTS`]: parsing it would take far more
    /// memory than any ADT message needs.
    #[error("the message has more than {MAX_ELEMENTS} fields, repetitions, components and subcomponents")]
    TooManyElements,
    /// A segment id is not three upper-case letters or digits.
    #[error("segment {segment_number} has an invalid segment id `{found}`")]
    InvalidSegmentId {
        /// The 1-based position of the segment in the message.
        segment_number: usize,
        /// The start of the offending segment (at most 16 characters).
        found: String,
    },
}

impl ParseError {
    /// Where the error is, for the ERR segment of the acknowledgement.
    pub fn location(&self) -> Option<Location> {
        match self {
            ParseError::Empty | ParseError::MissingHeader | ParseError::TooManyElements => None,
            ParseError::Delimiters(_) => Some(Location::field("MSH", 1, 2)),
            ParseError::InvalidSegmentId { .. } => None,
        }
    }
}

/// A position in a message as the ERR segment reports it (HL7 data type ERL): segment id, its
/// occurrence among segments of that id, field number, and optionally repetition and component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The segment id, e.g. `PID`.
    pub segment: String,
    /// 1-based occurrence of that segment id in the message.
    pub sequence: usize,
    /// 1-based field number (MSH-1 is the field separator).
    pub field: usize,
    /// 1-based repetition of the field, when relevant.
    pub repetition: Option<usize>,
    /// 1-based component, when relevant.
    pub component: Option<usize>,
}

impl Location {
    /// The location of a whole field.
    pub fn field(segment: &str, sequence: usize, field: usize) -> Self {
        Location { segment: segment.to_owned(), sequence, field, repetition: None, component: None }
    }

    /// The location of one component of the first repetition of a field.
    pub fn component(segment: &str, sequence: usize, field: usize, component: usize) -> Self {
        Location { segment: segment.to_owned(), sequence, field, repetition: Some(1), component: Some(component) }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.segment, self.field)?;
        if let Some(component) = self.component {
            write!(f, ".{component}")?;
        }
        Ok(())
    }
}

/// One subcomponent-split value: the leaf of the tree, with escape sequences decoded.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Component {
    /// The decoded subcomponents; never empty once parsed.
    pub subcomponents: Vec<String>,
}

impl Component {
    /// A component with one subcomponent.
    pub fn text(value: &str) -> Self {
        Component { subcomponents: vec![value.to_owned()] }
    }

    /// The 1-based subcomponent's text, or `""` when absent.
    pub fn subcomponent(&self, n: usize) -> &str {
        n.checked_sub(1).and_then(|i| self.subcomponents.get(i)).map_or("", String::as_str)
    }

    /// Whether every subcomponent is empty.
    pub fn is_empty(&self) -> bool {
        self.subcomponents.iter().all(String::is_empty)
    }
}

/// One repetition of a field: its components.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Repetition {
    /// The components; never empty once parsed.
    pub components: Vec<Component>,
}

impl Repetition {
    /// A repetition whose components are the given plain texts.
    pub fn from_components(values: &[&str]) -> Self {
        Repetition { components: values.iter().map(|v| Component::text(v)).collect() }
    }

    /// The 1-based component, when present.
    pub fn get(&self, n: usize) -> Option<&Component> {
        n.checked_sub(1).and_then(|i| self.components.get(i))
    }

    /// The first subcomponent of the 1-based component, or `""`.
    pub fn component(&self, n: usize) -> &str {
        self.get(n).map_or("", |c| c.subcomponent(1))
    }

    /// Whether every component is empty.
    pub fn is_empty(&self) -> bool {
        self.components.iter().all(Component::is_empty)
    }
}

/// One field: its repetitions.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Field {
    /// The repetitions; never empty once parsed.
    pub repetitions: Vec<Repetition>,
}

impl Field {
    /// A field holding one plain value.
    pub fn text(value: &str) -> Self {
        Field { repetitions: vec![Repetition::from_components(&[value])] }
    }

    /// A field with one repetition made of the given components.
    pub fn from_components(values: &[&str]) -> Self {
        Field { repetitions: vec![Repetition::from_components(values)] }
    }

    /// The first repetition, when present.
    pub fn first(&self) -> Option<&Repetition> {
        self.repetitions.first()
    }

    /// The first subcomponent of the 1-based component of the first repetition, or `""`.
    pub fn component(&self, n: usize) -> &str {
        self.first().map_or("", |r| r.component(n))
    }

    /// The field's first value (component 1 of repetition 1), or `""`.
    pub fn value(&self) -> &str {
        self.component(1)
    }

    /// Whether every repetition is empty.
    pub fn is_empty(&self) -> bool {
        self.repetitions.iter().all(Repetition::is_empty)
    }
}

/// One segment: its id and its fields, numbered from 1 as in the standard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// The three-character segment id (`MSH`, `PID`, `ZXY`…).
    pub id: String,
    /// Fields 1..n. For MSH, field 1 is the field separator and field 2 the encoding
    /// characters, each held verbatim as one value, so MSH-n is `field(n)` as for any segment.
    pub fields: Vec<Field>,
}

impl Segment {
    /// An empty segment with the given id.
    pub fn new(id: &str) -> Self {
        Segment { id: id.to_owned(), fields: Vec::new() }
    }

    /// The 1-based field, when present.
    pub fn field(&self, n: usize) -> Option<&Field> {
        n.checked_sub(1).and_then(|i| self.fields.get(i))
    }

    /// The first value of the 1-based field (component 1, repetition 1), or `""`.
    pub fn value(&self, n: usize) -> &str {
        self.field(n).map_or("", Field::value)
    }

    /// Sets the 1-based field, adding empty fields before it as needed.
    pub fn set_field(&mut self, n: usize, field: Field) {
        let Some(index) = n.checked_sub(1) else { return };
        if self.fields.len() <= index {
            self.fields.resize_with(index + 1, || Field::text(""));
        }
        self.fields[index] = field;
    }
}

/// A parsed HL7 v2 message: its delimiters and segments, values decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The delimiters declared by MSH-1 and MSH-2.
    pub delimiters: Delimiters,
    /// The segments in order; the first is MSH.
    pub segments: Vec<Segment>,
}

impl Message {
    /// A message holding only an MSH segment whose MSH-1 and MSH-2 match `delimiters`.
    pub fn new(delimiters: Delimiters) -> Self {
        let mut msh = Segment::new("MSH");
        msh.set_field(1, Field::text(&delimiters.field.to_string()));
        msh.set_field(2, Field::text(&delimiters.encoding_characters()));
        Message { delimiters, segments: vec![msh] }
    }

    /// The MSH segment.
    pub fn header(&self) -> &Segment {
        // Every constructor puts MSH first and the parser refuses messages without it; a
        // hand-built message with no segments gets an empty header instead of a panic.
        static EMPTY: std::sync::OnceLock<Segment> = std::sync::OnceLock::new();
        self.segments.first().unwrap_or_else(|| EMPTY.get_or_init(|| Segment::new("MSH")))
    }

    /// The first segment with this id.
    pub fn segment(&self, id: &str) -> Option<&Segment> {
        self.segments.iter().find(|s| s.id == id)
    }

    /// Every segment with this id, in order.
    pub fn segments_with_id<'a>(&'a self, id: &'a str) -> impl Iterator<Item = &'a Segment> + 'a {
        self.segments.iter().filter(move |s| s.id == id)
    }

    /// Writes the message with its own delimiters, segments ended by CR as the standard says.
    pub fn serialise(&self) -> String {
        let d = &self.delimiters;
        let mut out = String::new();
        for (i, segment) in self.segments.iter().enumerate() {
            out.push_str(&segment.id);
            // Only the first segment's MSH-1/MSH-2 declare delimiters; a later MSH is an
            // ordinary segment for the parser too.
            let fields = if i == 0 && segment.id == "MSH" {
                out.push(d.field);
                out.push_str(&d.encoding_characters());
                segment.fields.get(2..).unwrap_or_default()
            } else {
                &segment.fields[..]
            };
            for field in fields {
                out.push(d.field);
                write_field(&mut out, field, d);
            }
            out.push('\r');
        }
        out
    }
}

fn write_field(out: &mut String, field: &Field, d: &Delimiters) {
    for (r, repetition) in field.repetitions.iter().enumerate() {
        if r > 0 {
            out.push(d.repetition);
        }
        for (c, component) in repetition.components.iter().enumerate() {
            if c > 0 {
                out.push(d.component);
            }
            for (s, subcomponent) in component.subcomponents.iter().enumerate() {
                if s > 0 {
                    out.push(d.subcomponent);
                }
                out.push_str(&d.escape(subcomponent));
            }
        }
    }
}

/// Parses a whole message from the bytes of one MLLP frame (or a file).
pub fn parse_message(bytes: &[u8]) -> Result<Message, ParseError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let text = bytes_to_text(bytes);
    let mut lines = text.split(['\r', '\n']).map(|l| l.trim_start_matches([' ', '\t'])).filter(|l| !l.is_empty());
    let first = lines.next().ok_or(ParseError::Empty)?;
    let (delimiters, msh) = parse_header_segment(first, &text)?;
    let mut segments = vec![msh];
    for (i, line) in lines.enumerate() {
        segments.push(parse_segment(line, &delimiters, i + 2)?);
    }
    Ok(Message { delimiters, segments })
}

/// Parses only the first segment, for answering a message whose body could not be parsed:
/// the acknowledgement still needs the sender, the control id and the version.
pub fn parse_header(bytes: &[u8]) -> Result<Message, ParseError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let text = bytes_to_text(bytes);
    let first = text.split(['\r', '\n']).map(|l| l.trim_start_matches([' ', '\t'])).find(|l| !l.is_empty());
    let first = first.ok_or(ParseError::Empty)?;
    let (delimiters, msh) = parse_header_segment(first, first)?;
    Ok(Message { delimiters, segments: vec![msh] })
}

/// Refuses text with more than [`MAX_ELEMENTS`] delimiters before building any tree.
fn check_size(text: &str, d: &Delimiters) -> Result<(), ParseError> {
    let n_elements =
        text.chars().filter(|&c| c == d.field || c == d.component || c == d.repetition || c == d.subcomponent).count();
    if n_elements > MAX_ELEMENTS {
        return Err(ParseError::TooManyElements);
    }
    Ok(())
}

/// Parses the MSH segment; `text` is the whole message (or just the MSH line), checked for size.
fn parse_header_segment(line: &str, text: &str) -> Result<(Delimiters, Segment), ParseError> {
    let rest = line.strip_prefix("MSH").ok_or(ParseError::MissingHeader)?;
    let mut chars = rest.chars();
    let field_separator = chars.next().ok_or(ParseError::MissingHeader)?;
    let after_separator = chars.as_str();
    let (encoding, fields_text) = match after_separator.find(field_separator) {
        Some(at) => (&after_separator[..at], Some(&after_separator[at + field_separator.len_utf8()..])),
        None => (after_separator, None),
    };
    let delimiters = Delimiters::from_msh(field_separator, encoding)?;
    check_size(text, &delimiters)?;
    let mut msh = Message::new(delimiters).segments.remove(0);
    if let Some(fields_text) = fields_text {
        msh.fields.extend(fields_text.split(field_separator).map(|f| parse_field(f, &delimiters)));
    }
    Ok((delimiters, msh))
}

fn parse_segment(line: &str, d: &Delimiters, segment_number: usize) -> Result<Segment, ParseError> {
    let (id, fields_text) = match line.find(d.field) {
        Some(at) => (&line[..at], Some(&line[at + d.field.len_utf8()..])),
        None => (line, None),
    };
    let valid_id = id.len() == 3 && id.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
    if !valid_id {
        return Err(ParseError::InvalidSegmentId { segment_number, found: line.chars().take(16).collect() });
    }
    let fields = match fields_text {
        Some(text) => text.split(d.field).map(|f| parse_field(f, d)).collect(),
        None => Vec::new(),
    };
    Ok(Segment { id: id.to_owned(), fields })
}

fn parse_field(text: &str, d: &Delimiters) -> Field {
    Field {
        repetitions: text
            .split(d.repetition)
            .map(|r| Repetition {
                components: r
                    .split(d.component)
                    .map(|c| Component { subcomponents: c.split(d.subcomponent).map(|s| d.unescape(s)).collect() })
                    .collect(),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A01: &str = "MSH|^~\\&|PAS|RXX01|CARECIRCLE|CC|20240301101500+0000||ADT^A01^ADT_A01|MSG0001|P|2.5.1\r\
EVN|A01|20240301101500\r\
PID|1||9434765919^^^NHS^NH~RXX123456^^^RXX^MR||SMITH^JOHN^PAUL^^MR||19700101|M|||1 HIGH ST^^LEEDS^^LS1 1AA^GBR\r\
PV1|1|I|WARD1^BAY2^BED3^RXX01||||||||||||||||V00042^^^RXX^VN\r";

    #[test]
    fn parses_fields_components_repetitions() {
        let message = parse_message(A01.as_bytes()).unwrap();
        assert_eq!(message.segments.len(), 4);
        let msh = message.header();
        assert_eq!(msh.value(1), "|");
        assert_eq!(msh.value(2), "^~\\&");
        assert_eq!(msh.value(3), "PAS");
        assert_eq!(msh.field(9).unwrap().component(2), "A01");
        assert_eq!(msh.value(12), "2.5.1");
        let pid = message.segment("PID").unwrap();
        let ids = pid.field(3).unwrap();
        assert_eq!(ids.repetitions.len(), 2);
        assert_eq!(ids.repetitions[1].component(1), "RXX123456");
        assert_eq!(ids.repetitions[1].component(5), "MR");
        assert_eq!(pid.field(5).unwrap().component(3), "PAUL");
        assert_eq!(message.segment("PV1").unwrap().field(19).unwrap().component(4), "RXX");
    }

    #[test]
    fn tolerates_lf_and_crlf_and_leading_blank_lines() {
        let expected = parse_message(A01.as_bytes()).unwrap();
        let lf = A01.replace('\r', "\n");
        let crlf = A01.replace('\r', "\r\n");
        assert_eq!(parse_message(lf.as_bytes()).unwrap(), expected);
        assert_eq!(parse_message(format!("\r\n{crlf}\r\n").as_bytes()).unwrap(), expected);
    }

    #[test]
    fn other_delimiters_and_subcomponents() {
        let text = "MSH#*!@%#APP#FAC\rPID#1##123*X*Y*AUTH%2.16.840%ISO*MR!456\r";
        let message = parse_message(text.as_bytes()).unwrap();
        assert_eq!(message.delimiters.field, '#');
        let ids = message.segment("PID").unwrap().field(3).unwrap();
        assert_eq!(ids.repetitions.len(), 2);
        let authority = ids.repetitions[0].get(4).unwrap();
        assert_eq!(authority.subcomponents, vec!["AUTH", "2.16.840", "ISO"]);
        assert_eq!(message.header().value(3), "APP");
    }

    #[test]
    fn non_utf8_bytes_are_read_as_latin1() {
        let mut bytes = b"MSH|^~\\&|A|B\rPID|1||1||M".to_vec();
        bytes.push(0xDC);
        bytes.extend_from_slice(b"LLER^J\r");
        let message = parse_message(&bytes).unwrap();
        assert_eq!(message.segment("PID").unwrap().value(5), "M\u{dc}LLER");
    }

    #[test]
    fn errors_are_typed() {
        assert_eq!(parse_message(b" \r\n"), Err(ParseError::Empty));
        assert_eq!(parse_message(b"PID|1"), Err(ParseError::MissingHeader));
        assert!(matches!(parse_message(b"MSH|^~\\|A"), Err(ParseError::Delimiters(_))));
        assert_eq!(
            parse_message(b"MSH|^~\\&|A\rPID|1\rpv1|x\r"),
            Err(ParseError::InvalidSegmentId { segment_number: 3, found: "pv1|x".into() })
        );
        // The header alone can still be read for the acknowledgement.
        assert_eq!(parse_header(b"MSH|^~\\&|A\rpv1|x\r").unwrap().header().value(3), "A");
        let bomb = format!("MSH|^~\\&|A\rNTE|{}\r", "~".repeat(MAX_ELEMENTS));
        assert_eq!(parse_message(bomb.as_bytes()), Err(ParseError::TooManyElements));
        let fine = format!("MSH|^~\\&|A\rNTE|{}\r", "~".repeat(MAX_ELEMENTS - 10));
        assert!(parse_message(fine.as_bytes()).is_ok());
    }

    #[test]
    fn serialise_round_trips_a_real_message() {
        let message = parse_message(A01.as_bytes()).unwrap();
        assert_eq!(message.serialise(), A01);
    }
}
