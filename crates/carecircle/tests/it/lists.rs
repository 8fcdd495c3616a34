//! `carecircle lists import` as the administrator runs it offline: a partner's list with its
//! mapping, a summary of new / changed / left entries, idempotent re-runs, clear refusals.

use crate::carecircle;

const MAPPING: &str = r#"
local_id = "ref"
given = "first"
family = "last"
birth_date = "dob"
birth_date_format = "%d/%m/%Y"
key_worker = "worker"
key_worker_contact = "worker_phone"
service = "service"
"#;

const LIST: &str = "ref,first,last,dob,worker,worker_phone,service\n\
R1,Joe,Bloggs,14/03/1971,Sam Key,0113 496 0001,Floating support\n\
R2,Ann,Lee,01/01/1980,Sam Key,0113 496 0001,Floating support\n";

fn import(data: &std::path::Path, work: &std::path::Path, list: &str) -> (Option<i32>, String, String) {
    std::fs::write(work.join("list.csv"), list).unwrap();
    let output = carecircle(data)
        .args(["lists", "import", "--partner", "Organization/housing", "--mapping"])
        .arg(work.join("housing.toml"))
        .arg(work.join("list.csv"))
        .output()
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn lists_import_summarises_new_changed_and_departed_entries() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    std::fs::write(work.path().join("housing.toml"), MAPPING).unwrap();

    // The partner must exist first.
    let (code, _, stderr) = import(&data, work.path(), LIST);
    assert_ne!(code, Some(0));
    assert!(stderr.contains("Organization/housing is not known"), "{stderr}");
    std::fs::write(work.path().join("org.json"), r#"{"resourceType":"Organization","id":"housing","name":"Housing"}"#)
        .unwrap();
    let org = carecircle(&data).arg("import").arg(work.path().join("org.json")).output().unwrap();
    assert!(org.status.success(), "{}", String::from_utf8_lossy(&org.stdout));

    let (code, stdout, stderr) = import(&data, work.path(), LIST);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("rows: 2\nnew: 2\nchanged: 0\nunchanged: 0\nleft the list: 0"), "{stdout}");

    let (_, again, _) = import(&data, work.path(), LIST);
    assert!(again.contains("new: 0\nchanged: 0\nunchanged: 2\nleft the list: 0"), "{again}");

    let next = "ref,first,last,dob,worker,worker_phone,service\n\
R1,Joe,Bloggs,14/03/1971,Kim Lo,0113 496 0002,Floating support\n";
    let (_, third, _) = import(&data, work.path(), next);
    assert!(third.contains("new: 0\nchanged: 1\nunchanged: 0\nleft the list: 1"), "{third}");

    // A list the mapping does not fit is refused with the reason.
    let (code, _, stderr) = import(&data, work.path(), "ref,first\nR1,Joe\n");
    assert_ne!(code, Some(0));
    assert!(stderr.contains("no column \"last\""), "{stderr}");
}
