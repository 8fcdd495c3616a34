//! Generates a realistic, fictional multi-agency linkage set with a truth column: four partner
//! lists (GP, hospital, police, housing) with their own columns and date formats, mapping files
//! for each, and the usual mess: typos, nicknames, initials, transposed names, missing and
//! swapped dates, people who moved, shared households, twins, NHS numbers shared by some lists.
//!
//! cargo run --release -p carecircle-link --example gen_linkage_set -- --records 1000000 --out DIR [--seed N]

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const NICKNAMES: &str = include_str!("../data/nicknames.csv");
const COMMON_SURNAMES: &[&str] = &[
    "smith",
    "jones",
    "williams",
    "taylor",
    "brown",
    "davies",
    "evans",
    "wilson",
    "thomas",
    "johnson",
    "roberts",
    "robinson",
    "thompson",
    "wright",
    "walker",
    "white",
    "edwards",
    "hughes",
    "green",
    "hall",
    "lewis",
    "harris",
    "clarke",
    "patel",
    "jackson",
    "wood",
    "turner",
    "martin",
    "cooper",
    "hill",
    "ward",
    "morris",
    "moore",
    "clark",
    "lee",
    "king",
    "baker",
    "harrison",
    "morgan",
    "allen",
    "james",
    "scott",
    "phillips",
    "watson",
    "davis",
    "parker",
    "price",
    "bennett",
    "young",
    "griffiths",
    "mitchell",
    "kelly",
    "cook",
    "carter",
    "richardson",
    "bailey",
    "collins",
    "bell",
    "shaw",
    "murphy",
    "miller",
    "cox",
    "richards",
    "khan",
    "marshall",
    "anderson",
    "simpson",
    "ellis",
    "adams",
    "singh",
    "begum",
    "wilkinson",
    "foster",
    "chapman",
    "powell",
    "webb",
    "rogers",
    "gray",
    "mason",
    "ali",
    "hunt",
    "hussain",
    "campbell",
    "matthews",
    "owen",
    "palmer",
    "holmes",
    "mills",
    "barnes",
    "knight",
    "lloyd",
    "butler",
    "russell",
    "barker",
    "fisher",
    "stevens",
    "jenkins",
    "murray",
    "dixon",
    "harvey",
    "okafor",
    "nowak",
    "kowalski",
    "obrien",
    "mcdonald",
    "fernandes",
    "nguyen",
    "chen",
    "ahmed",
    "oconnor",
    "graham",
];
const SYLLABLES: &[&str] = &[
    "ash", "bar", "ber", "bright", "brook", "burn", "cal", "car", "chester", "dale", "den", "dun", "ell", "far",
    "field", "ford", "gar", "glen", "ham", "har", "hay", "hol", "kin", "lan", "ley", "lin", "mar", "mer", "mont",
    "mor", "nel", "ning", "ock", "pen", "ren", "ridge", "ros", "sel", "sher", "stan", "ston", "ton", "tre", "wel",
    "well", "wick", "win", "wor", "worth", "ing", "by", "thorpe", "wood", "shaw",
];
const STREET_TYPES: &[(&str, &str)] = &[
    ("street", "st"),
    ("road", "rd"),
    ("avenue", "ave"),
    ("lane", "ln"),
    ("close", "cl"),
    ("drive", "dr"),
    ("crescent", "cres"),
    ("gardens", "gdns"),
    ("way", "way"),
    ("terrace", "tce"),
];
const TOWNS: &[(&str, &str)] = &[
    ("Leeds", "LS"),
    ("Bradford", "BD"),
    ("Wakefield", "WF"),
    ("Huddersfield", "HD"),
    ("Halifax", "HX"),
    ("York", "YO"),
    ("Harrogate", "HG"),
    ("Sheffield", "S"),
    ("Doncaster", "DN"),
    ("Manchester", "M"),
    ("Oldham", "OL"),
    ("Bolton", "BL"),
    ("Stockport", "SK"),
    ("Wigan", "WN"),
    ("Preston", "PR"),
];

struct Args {
    records: usize,
    out: PathBuf,
    seed: u64,
}

fn parse_args() -> Args {
    let mut args = Args { records: 100_000, out: PathBuf::from("linkage-set"), seed: 2017 };
    let mut iter = std::env::args().skip(1);
    while let Some(flag) = iter.next() {
        let value = iter.next().unwrap_or_default();
        match flag.as_str() {
            "--records" => args.records = value.parse().expect("--records takes a number"),
            "--out" => args.out = PathBuf::from(value),
            "--seed" => args.seed = value.parse().expect("--seed takes a number"),
            other => panic!("unknown argument {other}; use --records N --out DIR [--seed N]"),
        }
    }
    args
}

#[derive(Clone)]
struct Person {
    truth: usize,
    given: String,
    middle: Option<String>,
    family: String,
    birth: (i32, u32, u32),
    male: bool,
    nhs: String,
    home: Address,
    phone: String,
}

#[derive(Clone)]
struct Address {
    number: u32,
    street_name: String,
    street_type: usize,
    town: usize,
    postcode: String,
}

fn capitalise(word: &str) -> String {
    let mut chars = word.chars();
    chars.next().map(|first| first.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

fn nhs_number(rng: &mut ChaCha8Rng) -> String {
    loop {
        let digits: Vec<u32> = (0..9).map(|_| rng.random_range(0..10)).collect();
        let sum: u32 = digits.iter().zip((2..=10).rev()).map(|(d, w)| d * w).sum();
        let check = match 11 - sum % 11 {
            11 => 0,
            10 => continue,
            c => c,
        };
        return digits.iter().chain(std::iter::once(&check)).map(|d| char::from_digit(*d, 10).unwrap_or('0')).collect();
    }
}

fn surname(rng: &mut ChaCha8Rng) -> String {
    // A Zipf-like head of common names and a long tail of made-up ones.
    if rng.random_bool(0.45) {
        let rank = (rng.random::<f64>().powf(2.5) * COMMON_SURNAMES.len() as f64) as usize;
        COMMON_SURNAMES[rank.min(COMMON_SURNAMES.len() - 1)].to_string()
    } else {
        let n = rng.random_range(2..=3);
        (0..n).map(|_| *SYLLABLES.choose(rng).unwrap_or(&"ton")).collect()
    }
}

fn address(rng: &mut ChaCha8Rng) -> Address {
    let town = rng.random_range(0..TOWNS.len());
    let district = rng.random_range(1..30);
    let letters = b"ABDEFGHJLNPQRSTUWXYZ";
    let postcode = format!(
        "{}{} {}{}{}",
        TOWNS[town].1,
        district,
        rng.random_range(1..10),
        letters[rng.random_range(0..letters.len())] as char,
        letters[rng.random_range(0..letters.len())] as char
    );
    let n = rng.random_range(2..=3);
    Address {
        number: rng.random_range(1..200),
        street_name: (0..n).map(|_| *SYLLABLES.choose(rng).unwrap_or(&"ton")).collect(),
        street_type: rng.random_range(0..STREET_TYPES.len()),
        town,
        postcode,
    }
}

fn typo(rng: &mut ChaCha8Rng, word: &str) -> String {
    let mut chars: Vec<char> = word.chars().collect();
    if chars.len() < 3 {
        return word.to_string();
    }
    let at = rng.random_range(1..chars.len() - 1);
    match rng.random_range(0..4) {
        0 => chars[at] = (b'a' + rng.random_range(0..26)) as char,
        1 => chars.swap(at, at + 1),
        2 => {
            chars.remove(at);
        }
        _ => chars.insert(at, chars[at]),
    }
    chars.into_iter().collect()
}

struct Names {
    canonical: Vec<&'static str>,
    nicknames: std::collections::HashMap<&'static str, Vec<&'static str>>,
}

fn names() -> Names {
    let mut nicknames: std::collections::HashMap<&str, Vec<&str>> = std::collections::HashMap::new();
    for line in NICKNAMES.lines().filter(|l| !l.starts_with('#')).skip(1) {
        if let Some((name, nickname)) = line.split_once(',') {
            nicknames.entry(name).or_default().push(nickname);
        }
    }
    let mut canonical: Vec<&str> = nicknames.keys().copied().filter(|name| name.len() > 3).collect();
    canonical.sort_unstable();
    Names { canonical, nicknames }
}

fn main() -> std::io::Result<()> {
    let args = parse_args();
    let mut rng = ChaCha8Rng::seed_from_u64(args.seed);
    let names = names();
    std::fs::create_dir_all(&args.out)?;

    // Households of 1-4 people sharing an address, phone and usually a family name; some twins.
    let n_people = args.records * 10 / 22;
    let mut people: Vec<Person> = Vec::with_capacity(n_people + 8);
    while people.len() < n_people {
        let home = address(&mut rng);
        let family = surname(&mut rng);
        let phone = format!("07{:09}", rng.random_range(0..1_000_000_000u64));
        let size = *[1, 1, 2, 2, 3, 4].choose(&mut rng).unwrap_or(&1);
        for member in 0..size {
            let birth = (rng.random_range(1930..2012), rng.random_range(1..=12), rng.random_range(1..=28));
            let person = Person {
                truth: people.len(),
                given: names.canonical.choose(&mut rng).unwrap_or(&"joseph").to_string(),
                middle: rng.random_bool(0.3).then(|| names.canonical.choose(&mut rng).unwrap_or(&"ann").to_string()),
                family: if member > 0 && rng.random_bool(0.2) { surname(&mut rng) } else { family.clone() },
                birth,
                male: rng.random_bool(0.5),
                nhs: nhs_number(&mut rng),
                home: home.clone(),
                phone: phone.clone(),
            };
            let twin = rng.random_bool(0.02);
            people.push(person.clone());
            if twin {
                let mut twin = person;
                twin.truth = people.len();
                twin.given = names.canonical.choose(&mut rng).unwrap_or(&"mary").to_string();
                twin.nhs = nhs_number(&mut rng);
                people.push(twin);
            }
        }
    }

    let open =
        |name: &str| -> std::io::Result<BufWriter<File>> { Ok(BufWriter::new(File::create(args.out.join(name))?)) };
    let mut gp = open("gp.csv")?;
    let mut hospital = open("hospital.csv")?;
    let mut police = open("police.csv")?;
    let mut housing = open("housing.csv")?;
    writeln!(
        gp,
        "patient_id,forename,surname,dob,sex,nhs_number,nhs_verified,address_line1,town,postcode,phone,truth"
    )?;
    writeln!(hospital, "mrn,first_name,last_name,birth_date,gender,nhs_no,house_no,street,city,post_code,truth")?;
    writeln!(police, "ref,name_given,name_family,dob,address,postcode,truth")?;
    writeln!(housing, "tenant_id,forenames,surname,date_of_birth,telephone,address,town,postcode,truth")?;

    let mut n_records = 0usize;
    let mut counters = [0usize; 4];
    for person in &people {
        let mut lists: Vec<usize> = Vec::new();
        for (list, probability) in [0.85, 0.5, 0.3, 0.55].iter().enumerate() {
            if rng.random_bool(*probability) {
                lists.push(list);
                if rng.random_bool(0.03) {
                    lists.push(list); // a duplicate registration in the same list
                }
            }
        }
        if lists.is_empty() {
            lists.push(rng.random_range(0..4));
        }
        for list in lists {
            counters[list] += 1;
            n_records += 1;
            let mut given = person.given.clone();
            let mut family = person.family.clone();
            let nickname_rate = if list == 2 { 0.4 } else { 0.12 };
            if rng.random_bool(nickname_rate) {
                if let Some(nick) = names.nicknames.get(person.given.as_str()).and_then(|n| n.choose(&mut rng)) {
                    given = nick.to_string();
                }
            }
            if rng.random_bool(0.06) {
                given = typo(&mut rng, &given);
            }
            if rng.random_bool(0.06) {
                family = typo(&mut rng, &family);
            }
            if list == 2 && rng.random_bool(0.1) {
                given = format!("{}.", &given[..1]);
            }
            if rng.random_bool(0.02) {
                std::mem::swap(&mut given, &mut family);
            }
            if rng.random_bool(0.03) {
                family = surname(&mut rng); // married or changed name
            }
            let missing_date = rng.random_bool([0.01, 0.02, 0.3, 0.2][list]);
            let (year, mut month, mut day) = person.birth;
            let mut year = year;
            if rng.random_bool(0.02) && day <= 12 {
                std::mem::swap(&mut month, &mut day);
            }
            if rng.random_bool(0.02) {
                year += if rng.random_bool(0.5) { 1 } else { -1 };
            }
            let home = if rng.random_bool(0.12) { address(&mut rng) } else { person.home.clone() };
            let street_type = STREET_TYPES[home.street_type];
            let street = format!(
                "{} {}",
                capitalise(&home.street_name),
                if rng.random_bool(0.3) { capitalise(street_type.1) } else { capitalise(street_type.0) }
            );
            let postcode = match rng.random_range(0..3) {
                0 => home.postcode.clone(),
                1 => home.postcode.replace(' ', ""),
                _ => home.postcode.to_lowercase(),
            };
            let town = TOWNS[home.town].0;
            let first = capitalise(&given);
            let last = capitalise(&family);
            let with_middle = |first: &str| match &person.middle {
                Some(middle) if rng_bool_fixed(person.truth) => format!("{first} {}", capitalise(middle)),
                _ => first.to_string(),
            };
            let truth = person.truth;
            match list {
                0 => {
                    let dob = if missing_date { String::new() } else { format!("{day:02}/{month:02}/{year}") };
                    let nhs = format!("{} {} {}", &person.nhs[..3], &person.nhs[3..6], &person.nhs[6..]);
                    let verified = if rng.random_bool(0.9) { "Y" } else { "N" };
                    let phone = if rng.random_bool(0.6) { person.phone.clone() } else { String::new() };
                    writeln!(
                        gp,
                        "G{},{},{},{dob},{},{nhs},{verified},{} {street},{town},{postcode},{phone},{truth}",
                        counters[0],
                        with_middle(&first),
                        last,
                        if person.male { "M" } else { "F" },
                        home.number
                    )?;
                }
                1 => {
                    let dob = if missing_date { String::new() } else { format!("{year}-{month:02}-{day:02}") };
                    let nhs = if rng.random_bool(0.8) {
                        if rng.random_bool(0.02) {
                            typo(&mut rng, &person.nhs)
                        } else {
                            person.nhs.clone()
                        }
                    } else {
                        String::new()
                    };
                    writeln!(
                        hospital,
                        "H{:07},{first},{last},{dob},{},{nhs},{},{street},{town},{postcode},{truth}",
                        counters[1],
                        if person.male { "male" } else { "female" },
                        home.number
                    )?;
                }
                2 => {
                    let dob =
                        if missing_date { String::new() } else { format!("{day:02}-{month:02}-{:02}", year % 100) };
                    writeln!(
                        police,
                        "P/{},{first},{},{dob},\"{}, {street}\",{postcode},{truth}",
                        counters[2],
                        last.to_uppercase(),
                        home.number
                    )?;
                }
                _ => {
                    let dob = if missing_date { String::new() } else { format!("{day:02}.{month:02}.{year}") };
                    let phone =
                        if rng.random_bool(0.7) { format!("+44 {}", &person.phone[1..]) } else { String::new() };
                    writeln!(
                        housing,
                        "T-{},{},{last},{dob},{phone},{} {street},{town},{postcode},{truth}",
                        counters[3],
                        with_middle(&first),
                        home.number
                    )?;
                }
            }
        }
    }
    for writer in [&mut gp, &mut hospital, &mut police, &mut housing] {
        writer.flush()?;
    }
    let mappings = [
        ("gp.toml", "source = \"gp\"\nlocal_id = \"patient_id\"\ngiven = \"forename\"\nfamily = \"surname\"\nbirth_date = \"dob\"\nbirth_date_format = \"%d/%m/%Y\"\nsex = \"sex\"\nnational_id = \"nhs_number\"\nnational_id_verified = \"nhs_verified\"\naddress = \"address_line1\"\ncity = \"town\"\npostcode = \"postcode\"\nphone = \"phone\"\n"),
        ("hospital.toml", "source = \"hospital\"\nlocal_id = \"mrn\"\ngiven = \"first_name\"\nfamily = \"last_name\"\nbirth_date = \"birth_date\"\nbirth_date_format = \"%Y-%m-%d\"\nsex = \"gender\"\nnational_id = \"nhs_no\"\nhouse_number = \"house_no\"\naddress = \"street\"\ncity = \"city\"\npostcode = \"post_code\"\n"),
        ("police.toml", "source = \"police\"\nlocal_id = \"ref\"\ngiven = \"name_given\"\nfamily = \"name_family\"\nbirth_date = \"dob\"\nbirth_date_format = \"%d-%m-%y\"\naddress = \"address\"\npostcode = \"postcode\"\n"),
        ("housing.toml", "source = \"housing\"\nlocal_id = \"tenant_id\"\ngiven = \"forenames\"\nfamily = \"surname\"\nbirth_date = \"date_of_birth\"\nbirth_date_format = \"%d.%m.%Y\"\nphone = \"telephone\"\naddress = \"address\"\ncity = \"town\"\npostcode = \"postcode\"\n"),
    ];
    for (name, text) in mappings {
        std::fs::write(args.out.join(name), text)?;
    }
    println!("wrote {n_records} records of {} people to {}", people.len(), args.out.display());
    Ok(())
}

/// Whether a person's middle name is written (fixed per person, so lists agree on the habit).
fn rng_bool_fixed(truth: usize) -> bool {
    truth.is_multiple_of(3)
}
