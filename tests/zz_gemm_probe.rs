use gradlab::model::kernels::{Operand, matmul};
use std::time::Instant;
#[test]
fn probe() {
    let (b, h, t) = (64usize, 64usize, 200usize);
    let states = vec![0.3f32; (t + 1) * b * h];
    let da = vec![0.2f32; t * b * h];
    let u = vec![0.1f32; h * h];
    let mut du = vec![0.0f32; h * h];
    let mut carry = vec![0.0f32; b * h];
    let s = Instant::now();
    for _ in 0..10 { matmul(&mut du, h, h, t * b, Operand::transposed(&states[..t * b * h], h), Operand::plain(&da, h), false); }
    eprintln!("dU big-k: {:?} per call", s.elapsed() / 10);
    let x = vec![0.5f32; t * b * 2];
    let mut dw = vec![0.0f32; 2 * h];
    let s = Instant::now();
    for _ in 0..10 { matmul(&mut dw, 2, h, t * b, Operand::transposed(&x, 2), Operand::plain(&da, h), false); }
    eprintln!("dW big-k: {:?} per call", s.elapsed() / 10);
    let mut acts = vec![0.0f32; t * b * h];
    let w = vec![0.1f32; 2 * h];
    let s = Instant::now();
    for _ in 0..10 { matmul(&mut acts, t * b, h, 2, Operand::plain(&x, 2), Operand::plain(&w, h), true); }
    eprintln!("xW: {:?} per call", s.elapsed() / 10);
    let s = Instant::now();
    for _ in 0..10 { for k in 0..t { matmul(&mut carry, b, h, h, Operand::plain(&da[k*b*h..], h), Operand::transposed(&u, h), false); } }
    eprintln!("carry x{t}: {:?}", s.elapsed() / 10);
    let s = Instant::now();
    for _ in 0..10 { for k in 0..t { matmul(&mut carry, b, h, h, Operand::plain(&da[k*b*h..], h), Operand::plain(&u, h), true); } }
    eprintln!("fwd x{t}: {:?}", s.elapsed() / 10);
}
