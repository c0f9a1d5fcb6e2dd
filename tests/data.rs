//! Mini-batch iteration used from outside the crate: epochs, seeds, drop_last and
//! row gathering, with the crate's re-exported `rand`.

use ferrograd::data::{gather_rows, try_gather_rows, Batches};
use ferrograd::rand::{rngs::StdRng, SeedableRng};
use ferrograd::{Error, Tensor};

fn epoch_order(b: Batches) -> Vec<usize> {
    b.into_iter().flatten().collect()
}

#[test]
fn each_epoch_visits_every_index_once() {
    let mut rng = StdRng::seed_from_u64(42);
    let mut orders = Vec::new();
    for _epoch in 0..4 {
        let batches = Batches::new(23, 5).shuffle(&mut rng);
        assert_eq!(batches.len(), 5);
        let sizes: Vec<usize> = batches.iter().map(<[usize]>::len).collect();
        assert_eq!(sizes, [5, 5, 5, 5, 3]);
        let order = epoch_order(batches);
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..23).collect::<Vec<_>>());
        orders.push(order);
    }
    // a new order each epoch
    for i in 1..orders.len() {
        assert_ne!(orders[i - 1], orders[i]);
    }
}

#[test]
fn seeds_reproduce_and_differ() {
    let run = |seed: u64| {
        let mut rng = StdRng::seed_from_u64(seed);
        (0..3)
            .map(|_| epoch_order(Batches::new(40, 6).shuffle(&mut rng)))
            .collect::<Vec<_>>()
    };
    assert_eq!(run(9), run(9));
    assert_ne!(run(9), run(10));
    // without shuffle the order is 0..n
    assert_eq!(epoch_order(Batches::new(7, 3)), (0..7).collect::<Vec<_>>());
}

#[test]
fn drop_last_keeps_only_full_batches() {
    let mut rng = StdRng::seed_from_u64(1);
    let b = Batches::new(23, 5).shuffle(&mut rng).drop_last(true);
    assert_eq!(b.len(), 4);
    let batches: Vec<Vec<usize>> = b.clone().into_iter().collect();
    assert!(batches.iter().all(|x| x.len() == 5));
    // the batches are the first 20 indices of the shuffled order
    assert_eq!(
        batches.concat(),
        b.order()[..20].to_vec(),
        "drop_last leaves out the tail of the order"
    );
    // kept by default, and drop_last(false) restores it
    assert_eq!(
        Batches::new(23, 5).drop_last(true).drop_last(false).len(),
        5
    );
}

#[test]
fn batch_size_zero_is_an_error_or_a_panic() {
    assert!(matches!(
        Batches::try_new(5, 0),
        Err(Error::InvalidArgument { .. })
    ));
    let panicked = std::panic::catch_unwind(|| Batches::new(5, 0)).is_err();
    assert!(panicked);
}

#[test]
fn gather_rows_builds_batches() {
    let x = Tensor::<f32>::arange(12).reshape(&[4, 3]);
    let y = Tensor::<f32>::from_vec(vec![10., 11., 12., 13.], &[4]).unwrap();
    for batch in &Batches::new(4, 3).shuffle(&mut StdRng::seed_from_u64(0)) {
        let xb = gather_rows(&x, batch);
        let yb = gather_rows(&y, batch);
        assert_eq!(xb.shape(), &[batch.len(), 3]);
        for (k, &i) in batch.iter().enumerate() {
            let row: Vec<f32> = (0..3).map(|j| (3 * i + j) as f32).collect();
            assert_eq!(xb.narrow(0, k, 1).to_vec(), row);
            assert_eq!(yb.to_vec()[k], 10.0 + i as f32);
        }
    }
    assert!(matches!(
        try_gather_rows(&x, &[0, 4]),
        Err(Error::IndexOutOfRange {
            index: 4,
            size: 4,
            ..
        })
    ));
}
