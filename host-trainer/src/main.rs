fn main() {
    println!("denoiserep: trainer being written (issue 3)");
}
