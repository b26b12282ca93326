//! Link settings for libtorch (feature `torch`, the default): an rpath so binaries and tests find
//! libtorch without LD_LIBRARY_PATH, and (feature `cuda`) a forced link of libtorch_cuda.so, which
//! the linker otherwise drops as unused so that the binary silently runs on CPU (tch-rs issue
//! #980). Without `torch` (`--no-default-features`, the tch-free data parsers) nothing is linked.
fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if std::env::var_os("CARGO_FEATURE_TORCH").is_none() {
        return;
    }
    if let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
        if std::env::var_os("CARGO_FEATURE_CUDA").is_some() {
            println!("cargo:rustc-link-arg=-Wl,--no-as-needed,{lib}/libtorch_cuda.so,--as-needed");
        }
    }
}
