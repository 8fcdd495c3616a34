//! Built-in lists of made-up names and fictional places, nicknames, and typo makers.
//!
//! Names are common given and family names combined at random; no list entry describes a real
//! person. Towns, streets and the `MF` postcode area are fictional.

use rand::Rng;

/// A given name and the nicknames people (and agencies) use for it.
pub type GivenName = (&'static str, &'static [&'static str]);

/// Male given names with their nicknames.
pub const MALE_GIVEN: &[GivenName] = &[
    ("Joseph", &["Joe"]),
    ("William", &["Bill", "Will", "Billy"]),
    ("Robert", &["Bob", "Rob", "Bobby"]),
    ("Michael", &["Mike", "Mick"]),
    ("Christopher", &["Chris"]),
    ("Thomas", &["Tom", "Tommy"]),
    ("James", &["Jim", "Jimmy", "Jamie"]),
    ("Richard", &["Rick", "Dick", "Richie"]),
    ("Anthony", &["Tony"]),
    ("Edward", &["Ed", "Ted", "Eddie"]),
    ("Daniel", &["Dan", "Danny"]),
    ("Matthew", &["Matt"]),
    ("Andrew", &["Andy", "Drew"]),
    ("Alexander", &["Alex", "Sandy"]),
    ("Benjamin", &["Ben"]),
    ("Nicholas", &["Nick", "Nicky"]),
    ("Stephen", &["Steve"]),
    ("Jonathan", &["Jon", "Jonny"]),
    ("Frederick", &["Fred", "Freddie"]),
    ("Albert", &["Bert", "Albie"]),
    ("Harold", &["Harry"]),
    ("Henry", &["Harry", "Hal"]),
    ("Peter", &["Pete"]),
    ("David", &["Dave", "Davey"]),
    ("Kenneth", &["Ken", "Kenny"]),
    ("Samuel", &["Sam"]),
    ("Mohammed", &["Mo"]),
    ("Tomasz", &["Tomek"]),
    ("Oluwaseun", &["Seun"]),
    ("Gary", &[]),
    ("Dean", &[]),
    ("Wayne", &[]),
    ("Ian", &[]),
    ("Paul", &[]),
    ("Mark", &[]),
    ("Lee", &[]),
    ("Craig", &[]),
    ("Imran", &[]),
    ("Kwame", &[]),
    ("Darren", &[]),
    ("Graham", &[]),
    ("Neil", &[]),
];

/// Female given names with their nicknames.
pub const FEMALE_GIVEN: &[GivenName] = &[
    ("Elizabeth", &["Liz", "Beth", "Lizzie", "Betty"]),
    ("Margaret", &["Maggie", "Peggy", "Meg"]),
    ("Catherine", &["Cathy", "Kate", "Kath"]),
    ("Patricia", &["Pat", "Trish"]),
    ("Jennifer", &["Jenny", "Jen"]),
    ("Susan", &["Sue", "Susie"]),
    ("Deborah", &["Debbie", "Deb"]),
    ("Rebecca", &["Becky", "Becca"]),
    ("Samantha", &["Sam"]),
    ("Victoria", &["Vicky", "Tori"]),
    ("Kathleen", &["Kath", "Kathy"]),
    ("Dorothy", &["Dot", "Dottie"]),
    ("Charlotte", &["Lottie", "Charlie"]),
    ("Jacqueline", &["Jackie"]),
    ("Christine", &["Chris", "Chrissie"]),
    ("Barbara", &["Babs", "Barb"]),
    ("Alexandra", &["Alex", "Lexi"]),
    ("Josephine", &["Jo", "Josie"]),
    ("Jessica", &["Jess"]),
    ("Abigail", &["Abby"]),
    ("Agnieszka", &["Aga"]),
    ("Karen", &[]),
    ("Julie", &[]),
    ("Tracey", &[]),
    ("Claire", &[]),
    ("Emma", &[]),
    ("Sarah", &[]),
    ("Laura", &[]),
    ("Amy", &[]),
    ("Priya", &[]),
    ("Aisha", &[]),
    ("Fatima", &[]),
    ("Chloe", &[]),
    ("Olivia", &[]),
    ("Joanne", &[]),
    ("Gemma", &[]),
    ("Nicola", &[]),
];

/// Family names.
pub const FAMILY: &[&str] = &[
    "Ackroyd",
    "Barraclough",
    "Hepworth",
    "Greenwood",
    "Sutcliffe",
    "Holroyd",
    "Whiteley",
    "Thwaite",
    "Lister",
    "Illingworth",
    "Haigh",
    "Crossley",
    "Pickles",
    "Dobson",
    "Atkinson",
    "Wainwright",
    "Brearley",
    "Firth",
    "Horsfall",
    "Kershaw",
    "Metcalfe",
    "Pickersgill",
    "Rushworth",
    "Scargill",
    "Tattersall",
    "Uttley",
    "Walmsley",
    "Hebden",
    "Calvert",
    "Dawson",
    "Fawcett",
    "Gill",
    "Hardcastle",
    "Jowett",
    "Lumb",
    "Moorhouse",
    "Nettleton",
    "Oldroyd",
    "Petty",
    "Ramsden",
    "Shackleton",
    "Townend",
    "Verity",
    "Wormald",
    "Kaur",
    "Hussain",
    "Begum",
    "Nowak",
    "Kowalski",
    "Okafor",
    "Mensah",
    "Patel",
    "Shah",
    "Khan",
    "O'Neill",
    "McBride",
    "Doherty",
    "Fraser",
    "Morgan",
    "Evans",
];

/// Middle names (any sex, used sparingly).
pub const MIDDLE: &[&str] = &[
    "John", "Anne", "Marie", "James", "Louise", "Edward", "Jane", "Lee", "May", "Paul", "Rose", "Alan", "Grace",
    "Francis",
];

/// Fictional towns, each with its postcode district numbers in the fictional `MF` area.
pub const TOWNS: &[(&str, &[u32])] = &[
    ("Minsterford", &[1, 2, 3, 4, 5, 6]),
    ("Kettleby", &[7, 8]),
    ("Ashby Moor", &[9]),
    ("Wharram Stoke", &[10]),
    ("Thornbeck", &[11]),
    ("Elderwick", &[12, 13]),
    ("Brackenby", &[14]),
    ("Hollins Cross", &[15]),
];

/// Fictional street name stems.
pub const STREETS: &[&str] = &[
    "Lowther",
    "Beckside",
    "Tanner",
    "Millgate",
    "Heworth",
    "Fossway",
    "Cherry",
    "Kingsmoor",
    "Bramble",
    "Saltergate",
    "Windmill",
    "Priory",
    "Hawthorn",
    "Rowan",
    "Station",
    "Chapel",
    "Orchard",
    "Water",
    "Foxglove",
    "Ouseburn",
    "Lime Tree",
    "Weaver",
    "Hollybank",
    "Copper",
];

/// Street name suffixes.
pub const STREET_KINDS: &[&str] =
    &["Street", "Road", "Close", "Lane", "Avenue", "Grove", "Terrace", "Court", "Way", "Crescent"];

/// Blocks of flats.
pub const BLOCKS: &[&str] = &["Ashby House", "Fossway Court", "Minster Heights", "Wren Court"];

/// Letters allowed in the inward part of a UK postcode.
const POSTCODE_LETTERS: &[u8] = b"ABDEFGHJLNPQRSTUWXYZ";

/// Pick one element of a non-empty slice.
pub fn pick<'a, T, R: Rng>(rng: &mut R, items: &'a [T]) -> &'a T {
    &items[rng.random_range(0..items.len())]
}

/// A UK-style postcode in the fictional `MF` area for a district, e.g. `MF3 7QN`.
pub fn postcode<R: Rng>(rng: &mut R, district: u32) -> String {
    let a = char::from(*pick(rng, POSTCODE_LETTERS));
    let b = char::from(*pick(rng, POSTCODE_LETTERS));
    format!("MF{district} {}{a}{b}", rng.random_range(1..10u32))
}

/// A typing mistake: swap two adjacent letters, or drop one. Returns `s` unchanged when it is too
/// short to mistype.
pub fn typo<R: Rng>(rng: &mut R, s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    if chars.len() < 3 {
        return s.to_string();
    }
    for _ in 0..8 {
        let mut out = chars.clone();
        // Never touch the first letter: people rarely mistype it, and it keeps names recognisable.
        let i = rng.random_range(1..chars.len());
        if rng.random_bool(0.5) && i + 1 < chars.len() {
            out.swap(i, i + 1);
        } else {
            out.remove(i);
        }
        let candidate: String = out.into_iter().collect();
        if candidate != s {
            return candidate;
        }
    }
    s.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn typos_differ_and_postcodes_look_british() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for name in ["Mallory", "Hepworth", "Joseph", "Ann"] {
            let t = typo(&mut rng, name);
            assert_ne!(t, name);
            assert!(t.len() + 1 >= name.len());
            assert_eq!(t.chars().next(), name.chars().next());
        }
        assert_eq!(typo(&mut rng, "Al"), "Al");
        for _ in 0..100 {
            let p = postcode(&mut rng, 12);
            let (out, inw) = p.split_once(' ').unwrap_or_default();
            assert_eq!(out, "MF12");
            assert_eq!(inw.len(), 3);
            assert!(inw.as_bytes()[0].is_ascii_digit());
        }
    }
}
