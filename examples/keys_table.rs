//! Prints the README's key table from the keymap (`scripts/figures.sh keys` splices it in).

fn main() {
    print!("{}", gradlab::ui::keys_doc::readme_section());
}
