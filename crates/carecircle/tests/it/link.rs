//! `carecircle link` as a data engineer runs it: two partner lists with their own columns and
//! date formats, one mapping each, a clusters file out, quality against a truth column, and
//! clear refusals of bad mappings.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Output};

const GIVEN: &[&str] = &["Joseph", "Mary", "Ahmed", "Olga", "Pierre", "Priya", "Sean", "Amara", "Tomasz", "Grace"];
const FAMILY: &[&str] =
    &["Smith", "Okafor", "Nowak", "Patel", "Dubois", "Chen", "Murphy", "Khan", "Jones", "Garcia", "Ashworth", "Brook"];
const STREETS: &[&str] = &["Mill Lane", "Church Street", "Station Road", "Park Avenue", "Oak Close"];

fn link(args: &[&str], work: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_carecircle"))
        .arg("link")
        .args(args)
        .current_dir(work)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

/// 60 people: a GP list (day-first dates, one address line) and a hospital list (ISO dates,
/// house number apart, other column names) holding 40 of them, with the usual small differences.
fn write_partner_lists(work: &Path) {
    let mut gp = String::from("patient_id,forename,surname,dob,address_line1,postcode,person\n");
    let mut hospital = String::from("mrn,first_name,last_name,birth_date,house_no,street,post_code,person\n");
    for person in 0..60usize {
        let given = GIVEN[person % GIVEN.len()];
        let family = FAMILY[(person * 7 / 3) % FAMILY.len()];
        let (year, month, day) = (1935 + (person * 13) % 70, 1 + (person * 5) % 12, 1 + (person * 11) % 28);
        let street = STREETS[person % STREETS.len()];
        let house = 1 + (person * 17) % 150;
        let postcode = format!("LS{} {}A{}", 1 + person % 25, 1 + person % 9, ["B", "D", "E", "F"][person % 4]);
        gp.push_str(&format!(
            "G{person},{given},{family},{day:02}/{month:02}/{year},{house} {street},{postcode},{person}\n"
        ));
        if person % 3 == 0 {
            continue;
        }
        // The hospital's copy: upper-case surname, a typo or a nickname now and then, a
        // missing postcode for some.
        let hospital_given = match person % 5 {
            0 if given == "Joseph" => "Joe".to_string(),
            1 => format!("{}{}", &given[..given.len() - 1], "e"),
            _ => given.to_string(),
        };
        let hospital_postcode = if person % 4 == 0 { String::new() } else { postcode.replace(' ', "") };
        hospital.push_str(&format!(
            "H{:05},{hospital_given},{},{year}-{month:02}-{day:02},{house},{street},{hospital_postcode},{person}\n",
            person * 31,
            family.to_uppercase()
        ));
    }
    std::fs::write(work.join("gp.csv"), gp).unwrap();
    std::fs::write(work.join("hospital.csv"), hospital).unwrap();
    std::fs::write(
        work.join("gp.toml"),
        "source = \"gp\"\nlocal_id = \"patient_id\"\ngiven = \"forename\"\nfamily = \"surname\"\n\
         birth_date = \"dob\"\nbirth_date_format = \"%d/%m/%Y\"\naddress = \"address_line1\"\npostcode = \"postcode\"\n",
    )
    .unwrap();
    std::fs::write(
        work.join("hospital.toml"),
        "source = \"hospital\"\nlocal_id = \"mrn\"\ngiven = \"first_name\"\nfamily = \"last_name\"\n\
         birth_date = \"birth_date\"\nhouse_number = \"house_no\"\naddress = \"street\"\npostcode = \"post_code\"\n",
    )
    .unwrap();
}

#[test]
fn two_partner_lists_with_their_own_mappings_become_persons() {
    let work = tempfile::tempdir().unwrap();
    write_partner_lists(work.path());
    let output = link(
        &[
            "--mapping",
            "gp.toml",
            "--mapping",
            "hospital.toml",
            "--out",
            "clusters.csv",
            "--truth",
            "person",
            "gp.csv",
            "hospital.csv",
        ],
        work.path(),
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("records: 100"), "{stdout}");

    // clusters.csv: every record once, and the truth's pairs share a person id.
    let clusters = std::fs::read_to_string(work.path().join("clusters.csv")).unwrap();
    let mut lines = clusters.lines();
    assert_eq!(lines.next(), Some("source,record_id,person_id"));
    let person_of: HashMap<(String, String), String> = lines
        .map(|line| {
            let fields: Vec<&str> = line.split(',').collect();
            ((fields[0].to_string(), fields[1].to_string()), fields[2].to_string())
        })
        .collect();
    assert_eq!(person_of.len(), 100);
    let person = |source: &str, id: String| person_of[&(source.to_string(), id)].clone();
    let together = (0..60)
        .filter(|p| p % 3 != 0)
        .filter(|&p| person("gp", format!("G{p}")) == person("hospital", format!("H{:05}", p * 31)))
        .count();
    assert!(together >= 38, "{together} of 40 people found in both lists");
    assert_ne!(person("gp", "G0".into()), person("gp", "G1".into()));
    let distinct: std::collections::HashSet<&String> = person_of.values().collect();
    assert!(distinct.len() >= 60 && distinct.len() <= 62, "{} persons", distinct.len());

    // --truth prints pairwise quality, consistent with the file.
    let quality = stdout.lines().find(|line| line.starts_with("pairwise precision")).expect("a quality line");
    let f1: f64 = quality.split("F1 ").nth(1).and_then(|rest| rest.split(' ').next()).unwrap().parse().unwrap();
    assert!(f1 >= 0.95, "{quality}");
    assert!(quality.contains("true pairs 40"), "{quality}");
}

#[test]
fn bad_mappings_are_refused_clearly() {
    let work = tempfile::tempdir().unwrap();
    write_partner_lists(work.path());

    std::fs::write(work.path().join("typo.toml"), "local_id = \"patient_id\"\ngivn = \"forename\"\n").unwrap();
    let unknown_key = link(&["--mapping", "typo.toml", "--out", "c.csv", "gp.csv"], work.path());
    let stderr = String::from_utf8_lossy(&unknown_key.stderr);
    assert!(!unknown_key.status.success());
    assert!(stderr.contains("typo.toml") && stderr.contains("givn"), "names the file and the key: {stderr}");

    std::fs::write(work.path().join("absent.toml"), "local_id = \"patient_id\"\nfamily = \"family_name\"\n").unwrap();
    let missing_column = link(&["--mapping", "absent.toml", "--out", "c.csv", "gp.csv"], work.path());
    let stderr = String::from_utf8_lossy(&missing_column.stderr);
    assert!(!missing_column.status.success());
    assert!(stderr.contains("gp.csv") && stderr.contains("family_name"), "names the input and the column: {stderr}");

    let wrong_count = link(
        &[
            "--mapping",
            "gp.toml",
            "--mapping",
            "gp.toml",
            "--mapping",
            "gp.toml",
            "--out",
            "c.csv",
            "gp.csv",
            "hospital.csv",
        ],
        work.path(),
    );
    assert!(!wrong_count.status.success());
    assert!(String::from_utf8_lossy(&wrong_count.stderr).contains("one per input"));
    assert!(!work.path().join("c.csv").exists(), "nothing is written after a refusal");
}
