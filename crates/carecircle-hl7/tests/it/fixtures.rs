//! Realistic ADT messages built per version and event, the way PAS systems send them.

/// The versions accepted.
pub const VERSIONS: [&str; 5] = ["2.3", "2.3.1", "2.4", "2.5", "2.5.1"];
/// The events accepted.
pub const EVENTS: [&str; 8] = ["A01", "A02", "A03", "A04", "A08", "A11", "A13", "A40"];

/// A segment with the given fields at their 1-based positions, empty fields between.
pub fn segment(id: &str, fields: &[(usize, &str)]) -> String {
    let last = fields.iter().map(|(n, _)| *n).max().unwrap_or(0);
    let mut values = vec![""; last];
    for (n, value) in fields {
        values[n - 1] = value;
    }
    format!("{id}|{}", values.join("|"))
}

/// The message structure each trigger event uses (HL7 v2.5 chapter 3).
fn structure(event: &str) -> &'static str {
    match event {
        "A02" => "ADT_A02",
        "A03" => "ADT_A03",
        "A11" => "ADT_A09",
        "A40" => "ADT_A39",
        _ => "ADT_A01",
    }
}

/// An ADT message of `event` in `version`, from facility RXX01 (a trust's PAS).
pub fn adt(version: &str, event: &str) -> String {
    let message_type =
        if version == "2.3" { format!("ADT^{event}") } else { format!("ADT^{event}^{}", structure(event)) };
    let control_id = format!("MSG-{event}-{version}");
    let msh = format!(
        "MSH|^~\\&|PAS|RXX01^2.16.840.1.113883.2.1.3.2.4.18.48^ISO|CARECIRCLE|CC|20240301101502||{message_type}|{control_id}|P|{version}|||AL|NE|GBR"
    );
    // EVN-6 (event occurred) exists from v2.3.1.
    let evn = if version == "2.3" {
        format!("EVN|{event}|20240301101500")
    } else {
        format!("EVN|{event}|20240301101500|||JSMITH^SMITH^JANE|20240301095500")
    };
    let pid = "PID|1||9434765919^^^NHS^NH~RXX123456^^^RXX^MR||SMITH^JOHN^PAUL^^MR^^L||19700101|M|||1 HIGH ST^FLAT 2^LEEDS^W YORKS^LS1 1AA^GBR^H||0113 496 0000^PRN^PH";
    let nk1 = "NK1|1|SMITH^MARY|SPO^Spouse";
    let class = if event == "A04" { "E" } else { "I" };
    let location = if event == "A04" { "ED^MAJORS^CUB4^RXX01" } else { "WARD1^BAY2^BED3^RXX01" };
    let mut pv1_fields = vec![
        (1, "1"),
        (2, class),
        (3, location),
        (7, "C1234^JONES^ALAN^^^DR"),
        (10, "MED"),
        (19, "V00042^^^RXX^VN"),
        (44, "20240301100000"),
    ];
    match event {
        "A02" => pv1_fields.push((6, "AMU^BAY1^BED7^RXX01")),
        "A03" => pv1_fields.push((45, "20240305140000")),
        _ => {}
    }
    let mut segments = vec![msh, evn, pid.to_owned()];
    if event == "A40" {
        segments.push("MRG|RXX999999^^^RXX^MR".to_owned());
    } else {
        segments.push(nk1.to_owned());
        segments.push(segment("PV1", &pv1_fields));
        segments.push("AL1|1|DA|PENICILLIN^Penicillin|SV|Anaphylaxis".to_owned());
        segments.push("ZCC|local|extension".to_owned());
    }
    segments.iter().map(|s| format!("{s}\r")).collect()
}
