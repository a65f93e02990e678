/* document_types.c: what a file name says about a document: the code fence
 * language of a source file (the names GitHub's Markdown highlights), plain
 * text, or a format that is not a document (refused by name even when its
 * bytes carry no magic number). */
#include <stddef.h>
#include <string.h>
#include <strings.h>

#include "media/document_internal.h"

typedef struct ext_lang {
    const char *ext, *lang;
} ext_lang;

/* Source files: extension (lowercase, no dot) -> fence language. */
static const ext_lang code[] = {
    {"c", "c"}, {"h", "c"}, {"cc", "cpp"}, {"cpp", "cpp"}, {"cxx", "cpp"}, {"c++", "cpp"}, {"hpp", "cpp"},
    {"hh", "cpp"}, {"hxx", "cpp"}, {"ipp", "cpp"}, {"cu", "cuda"}, {"cuh", "cuda"}, {"m", "objectivec"},
    {"mm", "objectivec"}, {"cs", "csharp"}, {"java", "java"}, {"kt", "kotlin"}, {"kts", "kotlin"},
    {"scala", "scala"}, {"groovy", "groovy"}, {"gradle", "groovy"}, {"py", "python"}, {"pyw", "python"},
    {"pyi", "python"}, {"ipynb", "json"}, {"js", "javascript"}, {"mjs", "javascript"}, {"cjs", "javascript"},
    {"jsx", "jsx"}, {"ts", "typescript"}, {"mts", "typescript"}, {"cts", "typescript"}, {"tsx", "tsx"},
    {"go", "go"}, {"rs", "rust"}, {"swift", "swift"}, {"rb", "ruby"}, {"php", "php"}, {"pl", "perl"},
    {"pm", "perl"}, {"lua", "lua"}, {"r", "r"}, {"jl", "julia"}, {"dart", "dart"}, {"hs", "haskell"},
    {"ml", "ocaml"}, {"mli", "ocaml"}, {"fs", "fsharp"}, {"ex", "elixir"}, {"exs", "elixir"}, {"erl", "erlang"},
    {"clj", "clojure"}, {"cljs", "clojure"}, {"lisp", "lisp"}, {"el", "elisp"}, {"scm", "scheme"}, {"zig", "zig"},
    {"nim", "nim"}, {"v", "verilog"}, {"sv", "systemverilog"}, {"vhd", "vhdl"}, {"vhdl", "vhdl"},
    {"f", "fortran"}, {"f90", "fortran"}, {"f95", "fortran"}, {"pas", "pascal"}, {"asm", "asm"}, {"s", "asm"},
    {"sh", "sh"}, {"bash", "bash"}, {"zsh", "zsh"}, {"fish", "fish"}, {"ps1", "powershell"}, {"bat", "batch"},
    {"cmd", "batch"}, {"sql", "sql"}, {"json", "json"}, {"jsonl", "json"}, {"yaml", "yaml"}, {"yml", "yaml"},
    {"toml", "toml"}, {"xml", "xml"}, {"xsd", "xml"}, {"svg", "xml"}, {"plist", "xml"}, {"html", "html"},
    {"htm", "html"}, {"css", "css"}, {"scss", "scss"}, {"sass", "sass"}, {"less", "less"}, {"vue", "vue"},
    {"svelte", "svelte"}, {"ini", "ini"}, {"cfg", "ini"}, {"conf", "ini"}, {"properties", "properties"},
    {"cmake", "cmake"}, {"mk", "makefile"}, {"mak", "makefile"}, {"dockerfile", "dockerfile"},
    {"tf", "hcl"}, {"hcl", "hcl"}, {"proto", "protobuf"}, {"graphql", "graphql"}, {"gql", "graphql"},
    {"tex", "latex"}, {"bib", "bibtex"}, {"diff", "diff"}, {"patch", "diff"}, {"glsl", "glsl"},
    {"hlsl", "hlsl"}, {"wgsl", "wgsl"}, {"sol", "solidity"}, {"vb", "vbnet"}, {"awk", "awk"}, {"sed", "sed"},
    {"nix", "nix"}, {"rkt", "racket"}, {"elm", "elm"}, {"purs", "purescript"}, {"cr", "crystal"},
    {"d", "d"}, {"ada", "ada"}, {"adb", "ada"}, {"cob", "cobol"}, {"prolog", "prolog"}, {"tcl", "tcl"},
};

/* Whole names that say what they are. */
static const ext_lang names[] = {
    {"makefile", "makefile"},   {"gnumakefile", "makefile"}, {"cmakelists.txt", "cmake"},
    {"dockerfile", "dockerfile"}, {"containerfile", "dockerfile"}, {"vagrantfile", "ruby"},
    {"gemfile", "ruby"},        {"rakefile", "ruby"},        {".bashrc", "bash"},
    {".bash_profile", "bash"},  {".zshrc", "zsh"},           {".profile", "sh"},
};

/* Plain text: fenced without a language. */
static const char *const plain[] = {
    "txt", "text", "md", "markdown", "mdx", "rst", "adoc", "asciidoc", "org", "log", "csv", "tsv",
    "srt", "vtt", "rtf", "ps", "eps", "nfo", "me", "1", "man", "readme", "license", "gitignore",
    "gitattributes", "editorconfig", "env",
};

/* Extensions of formats that are not documents, with what they are. */
static const struct {
    const char *ext, *what;
} binary[] = {
    {"docx", "a Word document (.docx)"},
    {"doc", "a Word document (.doc)"},
    {"odt", "an OpenDocument text (.odt)"},
    {"xlsx", "an Excel workbook (.xlsx)"},
    {"xls", "an Excel workbook (.xls)"},
    {"ods", "an OpenDocument spreadsheet (.ods)"},
    {"pptx", "a PowerPoint file (.pptx)"},
    {"ppt", "a PowerPoint file (.ppt)"},
    {"odp", "an OpenDocument presentation (.odp)"},
    {"pages", "a Pages document"},
    {"epub", "an EPUB e-book"}, {"mobi", "a Mobipocket e-book"}, {"djvu", "a DjVu document"},
    {"xps", "an XPS document"},
    {"zip", "a ZIP archive"}, {"gz", "a gzip archive"}, {"tgz", "a gzip archive"}, {"bz2", "a bzip2 archive"},
    {"xz", "an xz archive"}, {"7z", "a 7-Zip archive"}, {"rar", "a RAR archive"}, {"tar", "a tar archive"},
    {"zst", "a Zstandard archive"},
    {"png", "an image (.png)"}, {"jpg", "an image (.jpg)"}, {"jpeg", "an image (.jpeg)"},
    {"gif", "an image (.gif)"}, {"webp", "an image (.webp)"}, {"bmp", "an image (.bmp)"},
    {"tif", "an image (.tif)"}, {"tiff", "an image (.tiff)"}, {"heic", "an image (.heic)"},
    {"avif", "an image (.avif)"}, {"ico", "an image (.ico)"}, {"psd", "a Photoshop image (.psd)"},
    {"mp4", "a video (.mp4)"}, {"mov", "a video (.mov)"}, {"webm", "a video (.webm)"}, {"mkv", "a video (.mkv)"},
    {"avi", "a video (.avi)"}, {"mp3", "an audio file (.mp3)"}, {"wav", "an audio file (.wav)"},
    {"flac", "an audio file (.flac)"}, {"ogg", "an audio file (.ogg)"}, {"m4a", "an audio file (.m4a)"},
    {"exe", "a program (.exe)"}, {"dll", "a library (.dll)"}, {"so", "a library (.so)"},
    {"dylib", "a library (.dylib)"}, {"o", "an object file (.o)"}, {"a", "a library archive (.a)"},
    {"class", "a Java class file"}, {"jar", "a Java archive (.jar)"}, {"pyc", "compiled Python (.pyc)"},
    {"wasm", "a WebAssembly module"}, {"bin", "binary data (.bin)"}, {"iso", "a disk image (.iso)"},
    {"dmg", "a disk image (.dmg)"}, {"sqlite", "an SQLite database"}, {"db", "a database file (.db)"},
    {"gguf", "a model file (.gguf)"}, {"safetensors", "a model file (.safetensors)"},
    {"ttf", "a font (.ttf)"}, {"otf", "a font (.otf)"}, {"woff", "a font (.woff)"}, {"woff2", "a font (.woff2)"},
};

g3_document_type g3_document_type_of(const char *name) {
    g3_document_type t = {.lang = "", .binary = NULL, .known = false, .pdf = false};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcasecmp(name, names[i].ext) == 0) {
            t.lang = names[i].lang;
            t.known = true;
            return t;
        }
    const char *dot = strrchr(name, '.');
    const char *ext = dot ? dot + 1 : name; /* a dotless name is checked against plain only ("README") */
    if (dot && strcasecmp(ext, "pdf") == 0) {
        t.pdf = true;
        return t;
    }
    for (size_t i = 0; dot && i < sizeof code / sizeof code[0]; i++)
        if (strcasecmp(ext, code[i].ext) == 0) {
            t.lang = code[i].lang;
            t.known = true;
            return t;
        }
    for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++)
        if (strcasecmp(ext, plain[i]) == 0) {
            t.known = true;
            return t;
        }
    if (dot)
        for (size_t i = 0; i < sizeof binary / sizeof binary[0]; i++)
            if (strcasecmp(ext, binary[i].ext) == 0) {
                t.binary = binary[i].what;
                return t;
            }
    return t;
}
