fn main() {
    std::process::exit(hutch::app::main());
}
