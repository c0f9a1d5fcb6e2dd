//! `set_num_threads(1)`: every kernel runs on the thread that calls it, and a
//! thread other than the one that set the pool up is not left waiting for a
//! worker. (Its own test binary: the global pool is set up once per process.)

use ferrograd::Tensor;

#[test]
fn one_thread_runs_everything_where_it_is_called() {
    ferrograd::set_num_threads(1).unwrap();
    assert_eq!(ferrograd::num_threads(), 1);
    // one thread: the caller stays outside the pool, whose one worker idles
    assert_eq!(rayon::current_thread_index(), None);
    let product = || {
        let a = Tensor::<f64>::ones(&[400, 400]);
        a.matmul(&a).sum().item()
    };
    assert_eq!(product(), 400.0 * 400.0 * 400.0);
    assert_eq!(
        std::thread::spawn(product).join().unwrap(),
        400.0 * 400.0 * 400.0
    );
}
