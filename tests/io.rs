//! Checkpoints in the safetensors format, through the public API: round trips,
//! the file layout (checked with the `safetensors` crate and by hand-written bytes),
//! hostile files, and loading into a module by name.

mod common;

use std::collections::BTreeMap;

use common::TempPath;

use ferrograd::io::{
    load_into, load_into_lenient, load_safetensors, load_safetensors_from_bytes,
    load_safetensors_metadata, load_state_dict, save_module, save_safetensors,
    save_safetensors_with_metadata, to_safetensors_bytes,
};
use ferrograd::nn::{Module, ModuleParams};
use ferrograd::{Element, Error, Result, Tensor};

// ----- helpers -----

/// The message of an `Error::Format`, panicking on anything else.
#[track_caller]
fn format_msg<X>(r: Result<X>) -> String {
    match r {
        Err(Error::Format(m)) => m,
        Err(e) => panic!("expected Error::Format, got {e:?}"),
        Ok(_) => panic!("expected Error::Format, got Ok"),
    }
}

/// A file: the 8-byte little-endian header length, the header, the data.
fn file(header: &str, data: &[u8]) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

/// Loading `bytes` as f32 fails with a format error whose message holds `expect`.
#[track_caller]
fn rejects(bytes: &[u8], expect: &str) {
    let m = format_msg(load_safetensors_from_bytes::<f32>(bytes));
    assert!(m.contains(expect), "message {m:?} lacks {expect:?}");
    let m64 = format_msg(load_safetensors_from_bytes::<f64>(bytes));
    assert_eq!(m, m64);
}

fn bits32(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn bits64(v: &[f64]) -> Vec<u64> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn no_metadata() -> BTreeMap<String, String> {
    BTreeMap::new()
}

// ----- round trips -----

#[test]
fn api_md_call_round_trips() -> Result<()> {
    let path = TempPath::new("api");
    let w = Tensor::<f32>::from_vec(vec![1., 2., 3., 4., 5., 6.], &[2, 3])?;
    let b = Tensor::<f32>::from_vec(vec![-1., 0.5, 7.], &[3])?;
    ferrograd::io::save_safetensors(&path, &[("w", &w), ("b", &b)])?;
    let named: BTreeMap<String, Tensor<f32>> = ferrograd::io::load_safetensors(&path)?;
    assert_eq!(named.keys().collect::<Vec<_>>(), ["b", "w"]);
    assert_eq!(named["w"].shape(), &[2, 3]);
    assert_eq!(named["w"].to_vec(), w.to_vec());
    assert_eq!(named["b"].shape(), &[3]);
    assert_eq!(named["b"].to_vec(), b.to_vec());
    assert!(named["w"].is_leaf() && !named["w"].needs_grad());
    Ok(())
}

#[test]
fn f32_round_trip_keeps_every_bit() -> Result<()> {
    let special = vec![
        0.0,
        -0.0,
        1.0,
        -1.5,
        f32::MAX,
        f32::MIN,
        f32::MIN_POSITIVE,
        f32::from_bits(1), // smallest subnormal
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        f32::from_bits(0x7fc0_1234), // NaN with a payload
        f32::from_bits(0xffc0_0001),
        0.1,
    ];
    let x = Tensor::<f32>::from_vec(special.clone(), &[2, 7])?;
    let path = TempPath::new("bits32");
    save_safetensors(&path, &[("x", &x)])?;
    let back = load_safetensors::<f32, _>(&path)?;
    assert_eq!(back["x"].shape(), &[2, 7]);
    assert_eq!(bits32(&back["x"].to_vec()), bits32(&special));
    Ok(())
}

#[test]
fn f64_round_trip_keeps_every_bit() -> Result<()> {
    let special = vec![
        0.1,
        -0.0,
        1e300,
        -1e-310, // subnormal
        f64::MAX,
        f64::MIN_POSITIVE,
        f64::INFINITY,
        f64::NAN,
        f64::from_bits(0x7ff8_0000_dead_beef),
        std::f64::consts::PI,
    ];
    let x = Tensor::<f64>::from_vec(special.clone(), &[5, 2])?;
    let path = TempPath::new("bits64");
    save_safetensors(&path, &[("x", &x)])?;
    let back = load_safetensors::<f64, _>(&path)?;
    assert_eq!(back["x"].shape(), &[5, 2]);
    assert_eq!(bits64(&back["x"].to_vec()), bits64(&special));
    Ok(())
}

/// 0-d, empty and strided tensors (transposed, permuted, narrowed, broadcast views).
fn odd_tensors<T: Element>() -> Vec<(String, Tensor<T>)> {
    let m = Tensor::<T>::arange(6).reshape(&[2, 3]);
    let cube = Tensor::<T>::arange(24).reshape(&[2, 3, 4]);
    let row = Tensor::<T>::arange(3).reshape(&[1, 3]);
    vec![
        ("scalar".into(), Tensor::scalar(T::from_f64_lossy(-2.5))),
        ("empty".into(), Tensor::zeros(&[0])),
        ("empty_3d".into(), Tensor::zeros(&[2, 0, 3])),
        ("matrix".into(), m.clone()),
        ("transposed".into(), m.t()),
        ("permuted".into(), cube.permute(&[2, 0, 1])),
        ("narrowed".into(), cube.narrow(2, 1, 2)),
        ("broadcast".into(), row.broadcast_to(&[4, 3])),
    ]
}

fn check_odd_round_trip<T: Element>() -> Result<()> {
    let tensors = odd_tensors::<T>();
    assert!(!tensors[4].1.is_contiguous() && !tensors[7].1.is_contiguous());
    let path = TempPath::new("odd");
    save_safetensors(&path, &tensors)?;
    let back = load_safetensors::<T, _>(&path)?;
    assert_eq!(back.len(), tensors.len());
    for (name, t) in &tensors {
        let loaded = &back[name];
        assert_eq!(loaded.shape(), t.shape(), "{name}");
        assert_eq!(loaded.to_vec(), t.to_vec(), "{name}");
        assert!(loaded.is_contiguous(), "{name}");
    }
    assert_eq!(back["scalar"].ndim(), 0);
    assert_eq!(
        back["transposed"].to_vec(),
        [0., 3., 1., 4., 2., 5.].map(T::from_f64_lossy)
    );
    Ok(())
}

#[test]
fn zero_d_empty_and_strided_tensors_round_trip() -> Result<()> {
    check_odd_round_trip::<f32>()?;
    check_odd_round_trip::<f64>()
}

#[test]
fn f64_file_loads_as_f32_rounded_and_f32_file_as_f64_exactly() -> Result<()> {
    let wide = vec![
        0.1,
        1.0 / 3.0,
        1e300,
        -1e300,
        1e-50,
        f64::NAN,
        -0.0,
        16777217.0,
    ];
    let x = Tensor::<f64>::from_vec(wide.clone(), &[8])?;
    let bytes = to_safetensors_bytes(&[("x", &x)], &no_metadata())?;
    let narrow = load_safetensors_from_bytes::<f32>(&bytes)?["x"].to_vec();
    let expected: Vec<f32> = wide.iter().map(|&v| v as f32).collect();
    assert_eq!(bits32(&narrow), bits32(&expected));
    assert_eq!(narrow[2], f32::INFINITY);
    assert_eq!(narrow[7], 16777216.0); // rounded to nearest even

    let small = vec![0.1f32, f32::MAX, f32::from_bits(1), -0.0, f32::INFINITY];
    let y = Tensor::<f32>::from_vec(small.clone(), &[5])?;
    let bytes = to_safetensors_bytes(&[("y", &y)], &no_metadata())?;
    let widened = load_safetensors_from_bytes::<f64>(&bytes)?["y"].to_vec();
    let expected: Vec<f64> = small.iter().map(|&v| f64::from(v)).collect();
    assert_eq!(bits64(&widened), bits64(&expected));
    Ok(())
}

#[test]
fn owned_pairs_and_loaded_maps_can_be_saved() -> Result<()> {
    let owned: Vec<(String, Tensor<f32>)> = vec![
        ("a".to_string(), Tensor::ones(&[2])),
        ("b".to_string(), Tensor::zeros(&[1, 1])),
    ];
    let path = TempPath::new("owned");
    save_safetensors(&path, &owned)?;
    let loaded = load_safetensors::<f32, _>(&path)?;
    // a loaded map, saved again
    let pairs: Vec<(&String, &Tensor<f32>)> = loaded.iter().collect();
    let again = to_safetensors_bytes(&pairs, &no_metadata())?;
    assert_eq!(again, std::fs::read(&path)?);
    // (&str, Tensor) pairs
    let mixed = [("c", Tensor::<f64>::scalar(1.0))];
    assert_eq!(
        load_safetensors_from_bytes::<f64>(&to_safetensors_bytes(&mixed, &no_metadata())?)?.len(),
        1
    );
    Ok(())
}

#[test]
fn empty_list_writes_an_empty_file() -> Result<()> {
    let none: [(&str, &Tensor<f32>); 0] = [];
    let bytes = to_safetensors_bytes(&none, &no_metadata())?;
    assert_eq!(bytes.len(), 16);
    assert_eq!(&bytes[8..], b"{}      ");
    assert!(load_safetensors_from_bytes::<f32>(&bytes)?.is_empty());
    Ok(())
}

#[test]
fn duplicate_and_reserved_names_are_rejected() {
    let x = Tensor::<f32>::zeros(&[1]);
    let path = TempPath::new("dup");
    let m = format_msg(save_safetensors(&path, &[("x", &x), ("y", &x), ("x", &x)]));
    assert!(m.contains("duplicate tensor name \"x\""), "{m}");
    assert!(!path.as_ref().exists(), "nothing is written on error");
    let m = format_msg(to_safetensors_bytes(
        &[("__metadata__", &x)],
        &no_metadata(),
    ));
    assert!(m.contains("reserved"), "{m}");
    // the same tensor under two names is fine
    let bytes = to_safetensors_bytes(&[("x", &x), ("y", &x)], &no_metadata()).unwrap();
    assert_eq!(load_safetensors_from_bytes::<f32>(&bytes).unwrap().len(), 2);
}

#[test]
fn metadata_round_trips() -> Result<()> {
    let x = Tensor::<f32>::ones(&[2]);
    let meta = BTreeMap::from([
        ("format".to_string(), "pt".to_string()),
        ("note".to_string(), "quotes \" and\nnewlines, é".to_string()),
    ]);
    let path = TempPath::new("meta");
    save_safetensors_with_metadata(&path, &[("x", &x)], &meta)?;
    assert_eq!(load_safetensors_metadata(&path)?, meta);
    assert_eq!(
        load_safetensors::<f32, _>(&path)?["x"].to_vec(),
        vec![1., 1.]
    );

    save_safetensors(&path, &[("x", &x)])?; // overwrites
    assert!(load_safetensors_metadata(&path)?.is_empty());
    assert!(!String::from_utf8_lossy(&std::fs::read(&path)?).contains("__metadata__"));
    Ok(())
}

#[test]
fn io_errors_name_the_path() {
    let path = TempPath::new("does-not-exist");
    let err = load_safetensors::<f32, _>(&path).unwrap_err();
    assert!(matches!(&err, Error::Io(e) if e.kind() == std::io::ErrorKind::NotFound));
    assert!(err.to_string().contains("does-not-exist"), "{err}");
    assert!(matches!(
        load_safetensors_metadata(&path),
        Err(Error::Io(_))
    ));
    let dir = std::env::temp_dir().join(format!(
        "ferrograd-io-test-{}-no-such-dir",
        std::process::id()
    ));
    let x = Tensor::<f32>::zeros(&[1]);
    assert!(matches!(
        save_safetensors(dir.join("x.safetensors"), &[("x", &x)]),
        Err(Error::Io(_))
    ));
}

// ----- the layout, checked from outside -----

#[test]
fn files_parse_with_the_safetensors_crate() -> Result<()> {
    use safetensors::{Dtype, SafeTensors};

    let f32s = odd_tensors::<f32>();
    let meta = BTreeMap::from([("format".to_string(), "pt".to_string())]);
    let path = TempPath::new("crate");
    save_safetensors_with_metadata(&path, &f32s, &meta)?;
    let bytes = std::fs::read(&path)?;
    assert_eq!(
        bytes,
        to_safetensors_bytes(&f32s, &meta)?,
        "file and in-memory bytes agree"
    );

    // the header: length prefix, JSON object padded with spaces to a multiple of 8
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    assert_eq!(n % 8, 0);
    let header = std::str::from_utf8(&bytes[8..8 + n]).unwrap();
    assert!(header.starts_with('{') && header.trim_end_matches(' ').ends_with('}'));

    let st = SafeTensors::deserialize(&bytes).expect("the safetensors crate reads our file");
    assert_eq!(st.len(), f32s.len());
    for (name, t) in &f32s {
        let view = st.tensor(name).expect("tensor present");
        assert_eq!(view.dtype(), Dtype::F32, "{name}");
        assert_eq!(view.shape(), t.shape(), "{name}");
        let le: Vec<u8> = t.to_vec().iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(view.data(), &le[..], "{name}");
    }
    let (_, metadata) = SafeTensors::read_metadata(&bytes).unwrap();
    assert_eq!(metadata.metadata().as_ref().unwrap()["format"], "pt");

    let f64s = odd_tensors::<f64>();
    let bytes = to_safetensors_bytes(&f64s, &no_metadata())?;
    let st = SafeTensors::deserialize(&bytes).unwrap();
    for (name, t) in &f64s {
        let view = st.tensor(name).unwrap();
        assert_eq!(view.dtype(), Dtype::F64, "{name}");
        assert_eq!(view.shape(), t.shape(), "{name}");
        let le: Vec<u8> = t.to_vec().iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(view.data(), &le[..], "{name}");
    }
    Ok(())
}

/// The bytes are those the `safetensors` crate writes for the same tensors, byte for
/// byte: same header (names escaped alike, tensors sorted by name, the metadata
/// first), same padding.
#[test]
fn bytes_match_the_safetensors_crate() -> Result<()> {
    use std::collections::HashMap;

    use safetensors::tensor::TensorView;
    use safetensors::Dtype;

    let names = [
        "w",
        "layer.0.weight",
        "quote\"back\\slash/",
        "ctl\n\r\t\u{8}\u{c}\u{1}\u{1f}\u{7f}",
        "é😀",
        "",
    ];
    let tensors: Vec<(String, Tensor<f64>)> = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let shape: &[usize] = [&[2, 3][..], &[], &[0, 4], &[5], &[1, 1, 2], &[3]][i];
            let numel = shape.iter().product();
            (
                n.to_string(),
                Tensor::arange(numel).reshape(shape) * (i as f64 + 0.5),
            )
        })
        .collect();
    let data: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, t)| t.to_vec().iter().flat_map(|v| v.to_le_bytes()).collect())
        .collect();
    let views = || {
        tensors
            .iter()
            .zip(&data)
            .map(|((n, t), d)| {
                (
                    n.as_str(),
                    TensorView::new(Dtype::F64, t.shape().to_vec(), d).unwrap(),
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        to_safetensors_bytes(&tensors, &no_metadata())?,
        safetensors::serialize(views(), None).unwrap()
    );
    let meta = BTreeMap::from([("k\"\u{1}".to_string(), "v\\\né".to_string())]);
    let hash_meta: HashMap<String, String> = meta.clone().into_iter().collect();
    assert_eq!(
        to_safetensors_bytes(&tensors, &meta)?,
        safetensors::serialize(views(), Some(hash_meta)).unwrap()
    );
    Ok(())
}

#[test]
fn files_written_by_the_safetensors_crate_load() -> Result<()> {
    use safetensors::tensor::TensorView;
    use safetensors::Dtype;

    let a: Vec<u8> = [1.5f32, -2.0, 3.25, 0.0, 8.0, 9.5]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let b: Vec<u8> = [0.1f64, 0.2].iter().flat_map(|v| v.to_le_bytes()).collect();
    let views = vec![
        ("a", TensorView::new(Dtype::F32, vec![3, 2], &a).unwrap()),
        ("b", TensorView::new(Dtype::F64, vec![2], &b).unwrap()),
    ];
    let bytes = safetensors::serialize(views, None).unwrap();
    let loaded = load_safetensors_from_bytes::<f64>(&bytes)?;
    assert_eq!(loaded["a"].shape(), &[3, 2]);
    assert_eq!(loaded["a"].to_vec(), vec![1.5, -2.0, 3.25, 0.0, 8.0, 9.5]);
    assert_eq!(loaded["b"].to_vec(), vec![0.1, 0.2]);
    Ok(())
}

/// A file written byte by byte from the format's description, as PyTorch's
/// `save_file` lays it out (tensors listed in any order, `"format": "pt"`).
#[test]
fn hand_written_file_loads() -> Result<()> {
    let header = concat!(
        r#"{"__metadata__":{"format":"pt"},"#,
        r#""bias":{"dtype":"F64","shape":[2],"data_offsets":[16,32]},"#,
        r#""weight":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}}"#,
    );
    let mut bytes = Vec::new();
    bytes.extend_from_slice(&(header.len() as u64).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    #[rustfmt::skip]
    bytes.extend_from_slice(&[
        0x00, 0x00, 0x80, 0x3f, // 1.0f32
        0x00, 0x00, 0x20, 0xc0, // -2.5f32
        0x00, 0x00, 0x00, 0x3f, // 0.5f32
        0x00, 0x00, 0x40, 0x40, // 3.0f32
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xf0, 0x3f, // 1.0f64
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xd0, 0xbf, // -0.25f64
    ]);
    let named = load_safetensors_from_bytes::<f32>(&bytes)?;
    assert_eq!(named["weight"].shape(), &[2, 2]);
    assert_eq!(named["weight"].to_vec(), vec![1.0, -2.5, 0.5, 3.0]);
    assert_eq!(named["bias"].to_vec(), vec![1.0, -0.25]);

    let path = TempPath::new("hand");
    std::fs::write(&path, &bytes)?;
    assert_eq!(load_safetensors_metadata(&path)?["format"], "pt");

    // whitespace, escapes and space padding, as other writers may produce
    let header = "{\n  \"w\\u00e9ight\" : { \"shape\" : [ ] , \"dtype\" : \"F32\" ,\n \"data_offsets\" : [ 0 , 4 ] }\n}   ";
    let named = load_safetensors_from_bytes::<f64>(&file(header, &2.0f32.to_le_bytes()))?;
    assert_eq!(named["wéight"].shape(), &[] as &[usize]);
    assert_eq!(named["wéight"].item(), 2.0);
    Ok(())
}

// ----- hostile files -----

fn tensor_json(name: &str, dtype: &str, shape: &str, begin: u64, end: u64) -> String {
    format!(r#""{name}":{{"dtype":"{dtype}","shape":{shape},"data_offsets":[{begin},{end}]}}"#)
}

#[test]
fn too_short_for_the_length_prefix() {
    rejects(&[], "0 bytes long, too short");
    rejects(&[1, 0, 0], "3 bytes long, too short");
}

#[test]
fn header_length_larger_than_the_file() {
    let mut bytes = 1000u64.to_le_bytes().to_vec();
    bytes.extend_from_slice(b"{}");
    rejects(&bytes, "header length 1000 is larger than the 2 bytes");
    let mut bytes = u64::MAX.to_le_bytes().to_vec();
    bytes.extend_from_slice(b"{}");
    rejects(&bytes, &format!("header length {} is larger", u64::MAX));

    let path = TempPath::new("long-header");
    std::fs::write(&path, &bytes).unwrap();
    let m = format_msg(load_safetensors_metadata(&path));
    assert!(m.contains("is larger than the 2 bytes"), "{m}");
    let m = format_msg(load_safetensors::<f32, _>(&path));
    assert!(m.contains("is larger than the 2 bytes"), "{m}");
}

#[test]
fn header_that_is_not_json() {
    rejects(
        &file("\u{0}\u{1}garbage", &[]),
        "invalid header at byte 0: expected '{', found byte 0x00",
    );
    let mut bytes = 2u64.to_le_bytes().to_vec();
    bytes.extend_from_slice(&[0xff, 0xfe]);
    rejects(&bytes, "not valid UTF-8");
    rejects(&file("[1, 2]", &[]), "expected '{', found '['");
    rejects(&file(r#"{"a": {"dtype": "F32", "#, &[]), "invalid header");
    rejects(
        &file("{} {}", &[]),
        "unexpected '{' after the header object",
    );
    rejects(&file("", &[]), "expected '{', found the end of the header");
    // deep nesting is an error, not a stack overflow
    rejects(
        &file(&format!(r#"{{"a":{}"#, "{".repeat(100_000)), &[]),
        "expected a string",
    );
}

#[test]
fn offsets_past_the_end_of_the_file() {
    let h = format!("{{{}}}", tensor_json("w", "F32", "[2]", 0, 8));
    rejects(
        &file(&h, &[0; 4]),
        "tensor \"w\": data_offsets [0, 8] run past the end of the 4-byte data section",
    );
    let h = format!(
        "{{{}}}",
        tensor_json("w", "F32", "[2]", u64::MAX - 7, u64::MAX)
    );
    rejects(&file(&h, &[0; 8]), "run past the end");
}

#[test]
fn overlapping_offsets() {
    let h = format!(
        "{{{},{}}}",
        tensor_json("a", "F32", "[2]", 0, 8),
        tensor_json("b", "F32", "[2]", 4, 12)
    );
    rejects(&file(&h, &[0; 12]), "tensors \"a\" and \"b\" overlap");
    // two tensors on the same bytes
    let h = format!(
        "{{{},{}}}",
        tensor_json("a", "F32", "[2]", 0, 8),
        tensor_json("b", "F32", "[2]", 0, 8)
    );
    rejects(&file(&h, &[0; 8]), "overlap");
}

#[test]
fn reversed_offsets_holes_and_trailing_bytes() {
    let h = format!("{{{}}}", tensor_json("w", "F32", "[1]", 4, 0));
    rejects(
        &file(&h, &[0; 4]),
        "tensor \"w\": data_offsets [4, 0] end before they begin",
    );
    let h = format!("{{{}}}", tensor_json("w", "F32", "[1]", 4, 8));
    rejects(
        &file(&h, &[0; 8]),
        "bytes 0..4 of the data section belong to no tensor",
    );
    let h = format!(
        "{{{},{}}}",
        tensor_json("a", "F32", "[1]", 0, 4),
        tensor_json("b", "F32", "[1]", 8, 12)
    );
    rejects(
        &file(&h, &[0; 12]),
        "bytes 4..8 of the data section belong to no tensor (a hole before \"b\")",
    );
    let h = format!("{{{}}}", tensor_json("w", "F32", "[1]", 0, 4));
    rejects(&file(&h, &[0; 7]), "3 bytes after the last tensor");
    rejects(&file("{}", &[0]), "1 bytes after the last tensor");
}

#[test]
fn tensors_listed_out_of_offset_order_are_fine() -> Result<()> {
    let h = format!(
        "{{{},{}}}",
        tensor_json("second", "F32", "[1]", 4, 8),
        tensor_json("first", "F32", "[1]", 0, 4)
    );
    let data: Vec<u8> = [1.0f32, 2.0].iter().flat_map(|v| v.to_le_bytes()).collect();
    let named = load_safetensors_from_bytes::<f32>(&file(&h, &data))?;
    assert_eq!(named["first"].item(), 1.0);
    assert_eq!(named["second"].item(), 2.0);
    Ok(())
}

#[test]
fn dtype_and_shape_disagree_with_the_byte_length() {
    let h = format!("{{{}}}", tensor_json("w", "F32", "[3]", 0, 8));
    rejects(
        &file(&h, &[0; 8]),
        "tensor \"w\": dtype F32 and shape [3] need 12 bytes, but data_offsets [0, 8] hold 8",
    );
    let h = format!("{{{}}}", tensor_json("w", "F64", "[]", 0, 4));
    rejects(&file(&h, &[0; 4]), "dtype F64 and shape [] need 8 bytes");
}

#[test]
fn shape_product_overflow() {
    let h = format!(
        "{{{}}}",
        tensor_json("w", "F32", "[4294967296,4294967296,4294967296]", 0, 8)
    );
    rejects(
        &file(&h, &[0; 8]),
        "tensor \"w\": shape [4294967296, 4294967296, 4294967296] is too large",
    );
    // the byte length would overflow even though the element count does not
    let h = format!(
        "{{{}}}",
        tensor_json("w", "F64", &format!("[{}]", 1u64 << 62), 0, 8)
    );
    rejects(&file(&h, &[0; 8]), "more elements than any tensor can have");
    // zero elements, but the other dimensions would overflow strides
    let h = format!(
        "{{{}}}",
        tensor_json("w", "F32", "[0,4294967296,4294967296]", 0, 0)
    );
    rejects(&file(&h, &[]), "is too large");
}

#[test]
fn huge_shape_with_tiny_data_allocates_nothing() {
    // 2^40 f32s would be 4 TiB: rejected before any allocation
    let h = format!("{{{}}}", tensor_json("w", "F32", "[1099511627776]", 0, 8));
    rejects(
        &file(&h, &[0; 8]),
        "need 4398046511104 bytes, but data_offsets [0, 8] hold 8",
    );
    let h = format!(
        "{{{}}}",
        tensor_json("w", "F32", "[65536,65536,65536]", 0, 1 << 50)
    );
    rejects(&file(&h, &[0; 8]), "run past the end");
}

/// Empty tensors whose other dimensions no tensor could have: `[0, 2^57]` used to
/// load (and `sum_axis(0)` on it then asked the allocator for 2^59 bytes and
/// aborted); `[0, 2^62]` failed with `InvalidArgument` instead of a format error.
#[test]
fn empty_tensors_with_absurd_dimensions_are_format_errors() {
    for shape in [
        format!("[0,{}]", 1u64 << 57),
        format!("[{},0]", 1u64 << 57),
        format!("[0,{}]", 1u64 << 62),
        format!("[0,{},2]", 1u64 << 45),
        format!("[{},0,{}]", 1u64 << 23, (1u64 << 22) + 1),
    ] {
        let h = format!("{{{}}}", tensor_json("e", "F32", &shape, 0, 0));
        rejects(&file(&h, &[]), "tensor \"e\": shape");
        let m = format_msg(load_safetensors_from_bytes::<f32>(&file(&h, &[])));
        assert!(m.contains("more elements than any tensor can have"), "{m}");
        // the header alone is rejected too
        let path = TempPath::new("absurd");
        std::fs::write(&path, file(&h, &[])).unwrap();
        format_msg(load_safetensors_metadata(&path));
        format_msg(load_safetensors::<f64, _>(&path));
    }
    // the largest span allowed: 2^45 elements
    let h = format!(
        "{{{}}}",
        tensor_json("e", "F64", &format!("[0,{}]", 1u64 << 45), 0, 0)
    );
    let named = load_safetensors_from_bytes::<f64>(&file(&h, &[])).unwrap();
    assert_eq!(named["e"].shape(), &[0, 1 << 45]);
}

/// A header length within the file but past the 100 MB limit of the reference
/// implementation is rejected before anything is allocated for it: a sparse file
/// declaring a 6 GiB header used to make `load_safetensors_metadata` allocate and
/// read 6 GiB (and abort where that much memory was not available).
#[cfg(unix)]
#[test]
fn header_longer_than_100_mb_is_rejected_before_reading_it() {
    let path = TempPath::new("sparse-header");
    let declared: u64 = 6 << 30;
    {
        let f = std::fs::File::create(&path).unwrap();
        std::io::Write::write_all(&mut &f, &declared.to_le_bytes()).unwrap();
        // sparse: no block is written
        f.set_len(8 + declared).unwrap();
    }
    let expect = format!("the header length {declared} exceeds the limit of 100000000 bytes");
    let m = format_msg(load_safetensors_metadata(&path));
    assert!(m.contains(&expect), "{m}");
    let m = format_msg(load_safetensors::<f32, _>(&path));
    assert!(m.contains(&expect), "{m}");
}

/// Offsets of many tensors that add up to nearly `usize::MAX`: the `safetensors`
/// crate 0.8.0 panics on this file (`attempt to add with overflow` in `read_metadata`).
#[test]
fn offsets_summing_to_nearly_usize_max() {
    let a: u64 = (1 << 61) - 1;
    let entries: Vec<String> = (0..8)
        .map(|i| {
            tensor_json(
                &format!("t{i}"),
                "U8",
                &format!("[{a}]"),
                a * i,
                a * (i + 1),
            )
        })
        .collect();
    let h = format!("{{{}}}", entries.join(","));
    rejects(
        &file(&h, &[0; 16]),
        "run past the end of the 16-byte data section",
    );
}

#[test]
fn unsupported_dtypes_name_the_tensor_and_dtype() {
    for (dtype, size) in [
        ("F16", 2),
        ("BF16", 2),
        ("I64", 8),
        ("U8", 1),
        ("BOOL", 1),
        ("C64", 8),
    ] {
        let h = format!(
            "{{{},{}}}",
            tensor_json("ok", "F32", "[1]", 0, 4),
            tensor_json("emb.weight", dtype, "[2]", 4, 4 + 2 * size)
        );
        let bytes = file(&h, &vec![0; 4 + 2 * size as usize]);
        rejects(
            &bytes,
            &format!("tensor \"emb.weight\" has dtype {dtype}; only F32 and F64"),
        );
        // the header itself is valid: its metadata can be read
        let path = TempPath::new("dtype");
        std::fs::write(&path, &bytes).unwrap();
        assert!(load_safetensors_metadata(&path).unwrap().is_empty());
    }
    let h = format!("{{{}}}", tensor_json("w", "F128", "[1]", 0, 16));
    rejects(
        &file(&h, &[0; 16]),
        "tensor \"w\" has an unknown dtype \"F128\"",
    );
}

#[test]
fn malformed_entries() {
    let one = |body: &str| file(&format!(r#"{{"w":{body}}}"#), &[0; 4]);
    rejects(
        &one(r#"{"dtype":"F32","shape":[1]}"#),
        "tensor \"w\": missing field \"data_offsets\"",
    );
    rejects(
        &one(r#"{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}"#),
        "non-negative integer",
    );
    rejects(
        &one(r#"{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}"#),
        "fraction",
    );
    rejects(
        &one(r#"{"dtype":"F32","shape":[1],"data_offsets":[0,99999999999999999999]}"#),
        "too large",
    );
    rejects(
        &one(r#"{"dtype":"F32","shape":[1],"data_offsets":[0]}"#),
        "expected [begin, end], found 1 numbers",
    );
    rejects(
        &one(r#"{"dtype":"F32","shape":1,"data_offsets":[0,4]}"#),
        "shape: expected '['",
    );
    rejects(
        &one(r#"{"dtype":32,"shape":[1],"data_offsets":[0,4]}"#),
        "dtype: expected a string",
    );
    rejects(
        &one(r#"{"dtype":"F32","shape":[1],"data_offsets":[0,4],"extra":0}"#),
        "unknown field \"extra\"",
    );
    rejects(
        &file(
            &format!(
                "{{{},{}}}",
                tensor_json("w", "F32", "[1]", 0, 4),
                tensor_json("w", "F32", "[0]", 4, 4)
            ),
            &[0; 4],
        ),
        "duplicate tensor name \"w\"",
    );
    rejects(
        &file(r#"{"__metadata__":{"step":10}}"#, &[]),
        "values must be strings",
    );
}

/// A small valid file with metadata and both dtypes' worth of tensors.
fn valid_file() -> Vec<u8> {
    let x = Tensor::<f32>::from_vec(vec![1., 2., 3., 4., 5., 6.], &[3, 2]).unwrap();
    let meta = BTreeMap::from([("format".to_string(), "pt".to_string())]);
    to_safetensors_bytes(
        &[
            ("x", x.clone()),
            ("s", Tensor::scalar(7.0)),
            ("e", Tensor::zeros(&[0, 2])),
        ],
        &meta,
    )
    .unwrap()
}

#[test]
fn every_truncation_is_a_format_error() {
    let bytes = valid_file();
    assert_eq!(load_safetensors_from_bytes::<f32>(&bytes).unwrap().len(), 3);
    for len in 0..bytes.len() {
        format_msg(load_safetensors_from_bytes::<f32>(&bytes[..len]));
    }
    let mut longer = bytes.clone();
    longer.push(0);
    rejects(&longer, "1 bytes after the last tensor");
}

#[test]
fn every_corrupted_byte_is_handled_without_panic() {
    let bytes = valid_file();
    for i in 0..bytes.len() {
        for mask in [0x01, 0x02, 0x10, 0x20, 0x80, 0xff] {
            let mut bad = bytes.clone();
            bad[i] ^= mask;
            match load_safetensors_from_bytes::<f64>(&bad) {
                Ok(_) | Err(Error::Format(_)) => {}
                Err(e) => panic!("byte {i} ^ {mask:#x}: unexpected error {e:?}"),
            }
        }
    }
}

// ----- loading into a module -----

/// A tiny module: `x · w + b`.
struct Affine<T: Element> {
    w: Tensor<T>,
    b: Tensor<T>,
}

impl<T: Element> Affine<T> {
    fn filled(v: f64) -> Self {
        Affine {
            w: Tensor::full(&[2, 3], T::from_f64_lossy(v)).requires_grad(),
            b: Tensor::full(&[3], T::from_f64_lossy(v)).requires_grad(),
        }
    }
}

impl<T: Element> Module<T> for Affine<T> {
    fn forward(&self, x: &Tensor<T>) -> Tensor<T> {
        x.matmul(&self.w) + &self.b
    }
}

/// Written by hand, with names that are not the fields'.
impl<T: Element> ModuleParams<T> for Affine<T> {
    fn named_parameters(&self) -> Vec<(String, Tensor<T>)> {
        vec![
            ("fc.weight".into(), self.w.clone()),
            ("fc.bias".into(), self.b.clone()),
        ]
    }
}

fn range(n: usize, shape: &[usize]) -> Tensor<f32> {
    Tensor::<f32>::arange(n).reshape(shape)
}

#[test]
fn save_module_then_load_into_restores_parameters_in_place() -> Result<()> {
    let trained = Affine::<f32> {
        w: range(6, &[2, 3]).requires_grad(),
        b: Tensor::from_vec(vec![0.5, -0.5, 1.5], &[3])?.requires_grad(),
    };
    let path = TempPath::new("module");
    save_module(&trained, &path)?;
    let saved = load_safetensors::<f32, _>(&path)?;
    assert_eq!(saved.keys().collect::<Vec<_>>(), ["fc.bias", "fc.weight"]);

    let fresh = Affine::<f32>::filled(0.0);
    let handle = fresh.w.clone(); // e.g. held by an optimizer
    let report = load_into(&fresh, &path)?;
    assert_eq!(report.loaded, ["fc.weight", "fc.bias"]);
    assert!(report.missing.is_empty() && report.unexpected.is_empty() && report.is_complete());
    assert_eq!(fresh.w.to_vec(), trained.w.to_vec());
    assert_eq!(handle.to_vec(), trained.w.to_vec());
    assert_eq!(fresh.b.to_vec(), vec![0.5, -0.5, 1.5]);
    let x = Tensor::<f32>::ones(&[1, 2]);
    assert_eq!(fresh.forward(&x).to_vec(), trained.forward(&x).to_vec());
    // still trainable leaves
    let grads = fresh.forward(&x).sum().backward()?;
    assert_eq!(grads.get(&fresh.b).unwrap().to_vec(), vec![1., 1., 1.]);
    Ok(())
}

#[test]
fn load_into_reports_missing_and_unexpected_keys() -> Result<()> {
    let path = TempPath::new("partial");
    let w = range(6, &[2, 3]);
    let extra = Tensor::<f32>::ones(&[4]);
    save_safetensors(
        &path,
        &[
            ("fc.weight", &w),
            ("head.weight", &extra),
            ("a_step", &extra),
        ],
    )?;
    let net = Affine::<f32>::filled(9.0);
    let report = load_into_lenient(&net, &path)?;
    assert_eq!(report.loaded, ["fc.weight"]);
    assert_eq!(report.missing, ["fc.bias"]);
    assert_eq!(report.unexpected, ["a_step", "head.weight"]);
    assert!(!report.is_complete());
    assert_eq!(
        report.to_string(),
        r#"loaded 1 tensors; missing ["fc.bias"]; unexpected ["a_step", "head.weight"]"#
    );
    assert_eq!(net.w.to_vec(), w.to_vec());
    assert_eq!(
        net.b.to_vec(),
        vec![9.0; 3],
        "a missing parameter keeps its values"
    );
    Ok(())
}

#[test]
fn shape_mismatch_names_the_key_and_both_shapes_and_changes_nothing() -> Result<()> {
    let path = TempPath::new("mismatch");
    let bias = Tensor::<f32>::ones(&[3]);
    let w = range(6, &[3, 2]);
    save_safetensors(&path, &[("fc.bias", &bias), ("fc.weight", &w)])?;
    let net = Affine::<f32>::filled(0.0);
    let m = format_msg(load_into(&net, &path));
    assert!(
        m.contains(
            r#"parameter "fc.weight" has shape [2, 3] in the module but [3, 2] in the checkpoint"#
        ),
        "{m}"
    );
    assert_eq!(
        net.b.to_vec(),
        vec![0.0; 3],
        "nothing is assigned when a shape differs"
    );
    // a broadcastable shape is still a mismatch
    let state = BTreeMap::from([("fc.bias".to_string(), Tensor::<f32>::ones(&[1]))]);
    let m = format_msg(load_state_dict(&net, &state, false));
    assert!(
        m.contains(r#""fc.bias" has shape [3] in the module but [1]"#),
        "{m}"
    );
    Ok(())
}

#[test]
fn strict_loading_requires_an_exact_fit() -> Result<()> {
    let path = TempPath::new("strict");
    let w = range(6, &[2, 3]);
    let b = Tensor::<f32>::ones(&[3]);
    let extra = Tensor::<f32>::ones(&[1]);

    save_safetensors(&path, &[("fc.weight", &w), ("fc.bias", &b)])?;
    let net = Affine::<f32>::filled(0.0);
    let report = load_into(&net, &path)?;
    assert!(report.is_complete());
    assert_eq!(net.b.to_vec(), vec![1.0; 3]);

    save_safetensors(&path, &[("fc.weight", &w), ("extra", &extra)])?;
    let net = Affine::<f32>::filled(0.0);
    let m = format_msg(load_into(&net, &path));
    assert!(
        m.contains(r#"missing keys ["fc.bias"]; unexpected keys ["extra"]"#),
        "{m}"
    );
    assert_eq!(
        net.w.to_vec(),
        vec![0.0; 6],
        "nothing is assigned on a strict failure"
    );
    Ok(())
}

#[test]
fn load_into_converts_between_element_types() -> Result<()> {
    let path = TempPath::new("convert");
    let source = Affine::<f32>::filled(0.1);
    save_module(&source, &path)?;
    let wide = Affine::<f64>::filled(0.0);
    load_into(&wide, &path)?;
    assert_eq!(wide.w.to_vec(), vec![f64::from(0.1f32); 6]);

    let wide = Affine::<f64>::filled(0.1);
    save_module(&wide, &path)?;
    let narrow = Affine::<f32>::filled(0.0);
    load_into(&narrow, &path)?;
    assert_eq!(narrow.b.to_vec(), vec![0.1f32; 3]);
    Ok(())
}

#[test]
fn works_through_dyn_module() -> Result<()> {
    let path = TempPath::new("dyn");
    let a: Box<dyn Module<f32>> = Box::new(Affine::<f32>::filled(2.0));
    save_module(a.as_ref(), &path)?;
    let b: Box<dyn Module<f32>> = Box::new(Affine::<f32>::filled(0.0));
    load_into(b.as_ref(), &path)?;
    assert_eq!(b.parameters()[0].to_vec(), vec![2.0; 6]);
    Ok(())
}

#[test]
fn loading_invalidates_graphs_that_saved_the_old_values() -> Result<()> {
    let path = TempPath::new("version");
    let net = Affine::<f32>::filled(1.0);
    let loss = (&net.w * &net.w).sum(); // saves w for backward
    save_module(&Affine::<f32>::filled(3.0), &path)?;
    load_into(&net, &path)?;
    assert!(matches!(
        loss.backward(),
        Err(Error::ModifiedInPlace { .. })
    ));
    Ok(())
}

#[cfg(unix)]
#[test]
fn saved_files_get_the_usual_permissions() {
    use std::os::unix::fs::PermissionsExt;
    let path =
        std::env::temp_dir().join(format!("ferrograd-perm-{}.safetensors", std::process::id()));
    let t = Tensor::<f32>::zeros(&[2]);
    ferrograd::io::save_safetensors(&path, &[("t", &t)]).unwrap();
    let plain = path.with_extension("plain");
    std::fs::write(&plain, b"x").unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(
        mode(&path),
        mode(&plain),
        "as std::fs::write would create it"
    );
    std::fs::remove_file(&path).unwrap();
    std::fs::remove_file(&plain).unwrap();
}
