//! The tokenizers of `ferrograd::text`: round trips, deterministic training,
//! compression, tie-breaking, errors, and save/load.

use ferrograd::text::{BpeTokenizer, CharTokenizer, Tokenizer};
use ferrograd::Error;
use proptest::prelude::*;

const CORPUS: &str = "the quick brown fox jumps over the lazy dog. \
    the dog sleeps; the fox runs. une fenêtre, café crème, naïve élève. \
    東京は日本の首都です。 rust 🦀 rust 🦀 crabs 🦀🦀.\n\tthe end, the end.";

fn bpe() -> BpeTokenizer {
    BpeTokenizer::train(CORPUS, 330).unwrap()
}

fn temp_path(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("ferrograd-tok-{}-{name}", std::process::id()))
}

#[test]
fn bpe_round_trips_assorted_utf8() {
    let tok = bpe();
    for text in [
        "",
        " ",
        "the quick brown fox",
        "café crème brûlée, naïve façade",
        "東京は日本の首都です。",
        "日本語のテキスト、訓練にはない",
        "🦀🦀 crabs 👩‍👩‍👧 emoji with ZWJ 🇫🇷",
        "never seen: zyxwvut QQQ 12345 \r\n\t  \u{0} \u{10ffff}",
        "  leading and trailing spaces  ",
    ] {
        let ids = tok.encode(text);
        assert!(ids.iter().all(|&id| id < tok.vocab_size()));
        assert_eq!(tok.decode(&ids).unwrap(), text);
    }
}

#[test]
fn bpe_training_is_deterministic() {
    let a = bpe();
    let b = bpe();
    assert_eq!(a.merges(), b.merges());
    assert_eq!(a, b);
}

/// The merges as one line, to compare across processes.
fn merges_line() -> String {
    bpe()
        .merges()
        .iter()
        .map(|(l, r)| format!("{l},{r}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Prints the merges when run as the child of
/// `bpe_training_is_deterministic_across_processes`; does nothing otherwise.
#[test]
fn child_prints_merges() {
    if std::env::var_os("FERROGRAD_TOKENIZERS_CHILD").is_some() {
        println!("MERGES: {}", merges_line());
    }
}

#[test]
fn bpe_training_is_deterministic_across_processes() {
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(exe)
        .args([
            "--exact",
            "child_prints_merges",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("FERROGRAD_TOKENIZERS_CHILD", "1")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let line = stdout
        .lines()
        .find_map(|l| l.split_once("MERGES: ").map(|(_, m)| m))
        .unwrap_or_else(|| panic!("no merges in the child's output:\n{stdout}"));
    assert_eq!(line, merges_line());
}

#[test]
fn bpe_merges_compress_the_training_text() {
    let tok = bpe();
    let bytes = CORPUS.len();
    let ids = tok.encode(CORPUS).len();
    assert!(ids * 2 < bytes, "{ids} tokens for {bytes} bytes");
    // more merges, never longer
    let small = BpeTokenizer::train(CORPUS, 270).unwrap();
    assert!(small.encode(CORPUS).len() > ids);
    assert!(small.encode(CORPUS).len() < bytes);
}

#[test]
fn bpe_vocab_size_is_honoured() {
    for size in [256, 257, 300, 330] {
        let tok = BpeTokenizer::train(CORPUS, size).unwrap();
        assert_eq!(tok.vocab_size(), size);
        assert_eq!(tok.merges().len(), size - 256);
        assert!(tok.encode(CORPUS).iter().all(|&id| id < size));
    }
    // the corpus runs out of pairs long before a million ids
    let all = BpeTokenizer::train(CORPUS, 1_000_000).unwrap();
    assert!(all.vocab_size() < 1_000_000);
    assert_eq!(all.vocab_size(), 256 + all.merges().len());
    assert!(matches!(
        BpeTokenizer::train(CORPUS, 255),
        Err(Error::InvalidArgument {
            op: "BpeTokenizer::train",
            ..
        })
    ));
}

#[test]
fn bpe_ties_are_broken_by_the_smallest_pair() {
    // Chunks "xy", " ab", " xy", " ab": (x, y), (' ', a) and (a, b) occur twice
    // each, (' ', x) once; (' ', a) = (32, 97) is the smallest of the three.
    let tok = BpeTokenizer::train("xy ab xy ab", 257).unwrap();
    assert_eq!(tok.merges(), &[(32, 97)]);
    // Chunks "yx", "\nba", "\nyx", "\nba": (y, x) = (121, 120) and (b, a) =
    // (98, 97) occur twice, as does ('\n', b) = (10, 98), the smallest.
    let tok = BpeTokenizer::train("yx\nba\nyx\nba", 258).unwrap();
    assert_eq!(tok.merges(), &[(10, 98), (121, 120)]);
    // One chunk, every pair once: (b, a) = (98, 97) is the smallest pair, and
    // wins though it comes last in the text.
    for text in ["yxba", "xyba", "zyba"] {
        let tok = BpeTokenizer::train(text, 257).unwrap();
        assert_eq!(tok.merges(), &[(b'b' as usize, b'a' as usize)], "{text}");
    }
    // A strictly more frequent, larger pair beats a smaller one.
    let tok = BpeTokenizer::train("zz zz zz ab", 257).unwrap();
    assert_eq!(tok.merges(), &[(b'z' as usize, b'z' as usize)]);
}

#[test]
fn bpe_merges_do_not_cross_chunks() {
    let tok = BpeTokenizer::train("a b a b a b a b", 300).unwrap();
    for &(l, r) in tok.merges() {
        let piece = [tok.token_bytes(l).unwrap(), tok.token_bytes(r).unwrap()].concat();
        let text = String::from_utf8(piece).unwrap();
        // no whitespace after a non-whitespace character inside a token
        let chars: Vec<char> = text.chars().collect();
        assert!(
            !chars
                .windows(2)
                .any(|w| !w[0].is_whitespace() && w[1].is_whitespace()),
            "{text:?}"
        );
    }
}

#[test]
fn bpe_decode_errors() {
    let tok = bpe();
    let err = tok.decode(&[104, 100_000]).unwrap_err();
    assert!(
        matches!(&err, Error::InvalidArgument { op: "BpeTokenizer::decode", msg } if msg.contains("100000")),
        "{err}"
    );
    // the first byte of 'é' alone is not UTF-8: strict decode fails, bytes work
    let half = "é".as_bytes()[0] as usize;
    assert!(tok.decode(&[half]).is_err());
    assert_eq!(tok.decode_bytes(&[half]).unwrap(), vec![half as u8]);
}

#[test]
fn char_tokenizer_round_trips_and_sorts() {
    let tok = CharTokenizer::train(CORPUS);
    let mut chars: Vec<char> = CORPUS.chars().collect();
    chars.sort();
    chars.dedup();
    assert_eq!(tok.chars(), &chars[..]);
    assert_eq!(tok.vocab_size(), chars.len());
    let ids = tok.encode(CORPUS).unwrap();
    assert_eq!(ids.len(), CORPUS.chars().count());
    assert_eq!(tok.decode(&ids).unwrap(), CORPUS);
    assert_eq!(tok.encode("").unwrap(), Vec::<usize>::new());
    assert_eq!(CharTokenizer::train("").vocab_size(), 0);
}

#[test]
fn char_unknown_character_is_named() {
    let tok = CharTokenizer::train("abc");
    let err = tok.encode("ab😀c").unwrap_err();
    let Error::InvalidArgument { op, msg } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(*op, "CharTokenizer::encode");
    assert!(msg.contains("'😀'") && msg.contains("U+1F600"), "{msg}");
    assert!(
        msg.contains("character 2") && msg.contains("byte 2"),
        "{msg}"
    );
    let err = tok.decode(&[0, 7]).unwrap_err();
    assert!(err.to_string().contains("id 7 at position 1"), "{err}");
}

#[test]
fn tokenizers_are_chosen_at_run_time() {
    for kind in ["char", "bpe"] {
        let tok: Box<dyn Tokenizer> = match kind {
            "char" => Box::new(CharTokenizer::train(CORPUS)),
            _ => Box::new(bpe()),
        };
        let ids = tok.encode("the fox").unwrap();
        assert!(ids.iter().all(|&id| id < tok.vocab_size()));
        assert_eq!(tok.decode(&ids).unwrap(), "the fox");
    }
}

#[test]
fn save_load_round_trips() {
    let path = temp_path("bpe.txt");
    let tok = bpe();
    tok.save(&path).unwrap();
    let back = BpeTokenizer::load(&path).unwrap();
    assert_eq!(back, tok);
    assert_eq!(back.encode(CORPUS), tok.encode(CORPUS));
    std::fs::remove_file(&path).unwrap();

    let path = temp_path("char.txt");
    // newlines, tabs and spaces in the vocabulary survive
    let tok = CharTokenizer::train(CORPUS);
    tok.save(&path).unwrap();
    assert_eq!(CharTokenizer::load(&path).unwrap(), tok);
    std::fs::remove_file(&path).unwrap();

    // empty vocabularies too
    let empty = CharTokenizer::train("");
    assert_eq!(CharTokenizer::from_text(&empty.to_text()).unwrap(), empty);
    let bytes_only = BpeTokenizer::default();
    assert_eq!(
        BpeTokenizer::from_text(&bytes_only.to_text()).unwrap(),
        bytes_only
    );
}

fn is_format(r: Result<impl std::fmt::Debug, Error>) -> bool {
    matches!(r, Err(Error::Format(_)))
}

#[test]
fn corrupt_bpe_files_are_format_errors() {
    let h = "ferrograd-tokenizer bpe 1\n";
    for text in [
        String::new(),
        "garbage".to_string(),
        "ferrograd-tokenizer bpe 2\nmerges 0\n".to_string(),
        "ferrograd-tokenizer char 1\nchars 0\n".to_string(),
        h.to_string(),
        format!("{h}merges\n"),
        format!("{h}merges x\n"),
        format!("{h}merges -1\n"),
        format!("{h}merges 2\n97 98\n"),         // truncated
        format!("{h}merges 1\n97 98\n99 100\n"), // extra line
        format!("{h}merges 1\n97 256\n"),        // refers to itself
        format!("{h}merges 2\n97 98\n257 97\n"), // refers to a later id
        format!("{h}merges 2\n97 98\n97 98\n"),  // repeated pair
        format!("{h}merges 1\n97\n"),
        format!("{h}merges 1\n97 98 99\n"),
        format!("{h}merges 1\n97  98\n"),
        format!("{h}merges 1\n+97 98\n"),
        format!("{h}merges 1\n97 99999999999999999999999\n"),
        format!("{h}merges 99999999999999999999\n"),
        format!("{h}merges 1\n\n"),
    ] {
        assert!(is_format(BpeTokenizer::from_text(&text)), "{text:?}");
    }
    // on disk: a file that is not UTF-8
    let path = temp_path("bad-bpe.txt");
    std::fs::write(&path, [0xff, 0xfe, 0x00]).unwrap();
    assert!(is_format(BpeTokenizer::load(&path)));
    std::fs::remove_file(&path).unwrap();
    assert!(matches!(
        BpeTokenizer::load(temp_path("missing.txt")),
        Err(Error::Io(_))
    ));
}

#[test]
fn corrupt_char_files_are_format_errors() {
    let h = "ferrograd-tokenizer char 1\n";
    for text in [
        String::new(),
        "ferrograd-tokenizer bpe 1\nmerges 0\n".to_string(),
        format!("{h}chars 2\n61\n"),
        format!("{h}chars 1\n61\n62\n"),
        format!("{h}chars 1\nzz\n"),
        format!("{h}chars 1\n\n"),
        format!("{h}chars 1\n+61\n"),
        format!("{h}chars 1\nd800\n"),   // a surrogate is no char
        format!("{h}chars 1\n110000\n"), // past the last code point
        format!("{h}chars 2\n62\n61\n"), // not sorted
        format!("{h}chars 2\n61\n61\n"), // repeated
    ] {
        assert!(is_format(CharTokenizer::from_text(&text)), "{text:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn bpe_round_trips_any_string(text in any::<String>()) {
        let tok = bpe();
        let ids = tok.encode(&text);
        prop_assert!(ids.len() <= text.len());
        prop_assert_eq!(tok.decode(&ids).unwrap(), text);
    }

    #[test]
    fn bpe_trained_on_any_string_round_trips_it(text in "\\PC{0,40}", other in any::<String>()) {
        let tok = BpeTokenizer::train(&text, 280).unwrap();
        prop_assert_eq!(&tok.decode(&tok.encode(&text)).unwrap(), &text);
        prop_assert_eq!(tok.decode(&tok.encode(&other)).unwrap(), other);
        let again = BpeTokenizer::train(&text, 280).unwrap();
        prop_assert_eq!(again.merges(), tok.merges());
    }

    #[test]
    fn char_round_trips_its_training_text(text in any::<String>()) {
        let tok = CharTokenizer::train(&text);
        prop_assert_eq!(tok.decode(&tok.encode(&text).unwrap()).unwrap(), text);
    }
}
