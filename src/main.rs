fn main() -> std::process::ExitCode {
    handstamp::cli::main()
}
