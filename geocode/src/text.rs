//! Text as the index sees it: lower case, diacritics folded (`Ä` → `a`, and `ae` as a second
//! spelling, as Germans type it without the key), `ß` → `ss`, `str.` → `strasse`; Latin and
//! digit runs are words; Chinese, Japanese and Korean runs have no spaces, so they become
//! character bigrams (a lone character stays a unigram) and a partial address still shares
//! most of its bigrams with the full one.

/// A token of the index: a whole word, or a CJK bigram / lone character.
pub type Token = String;

/// Folds one lower-case character; `None` keeps it as it is.
fn fold(c: char) -> Option<&'static str> {
    Some(match c {
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' | 'ă' | 'ą' => "a",
        'æ' => "ae",
        'ç' | 'ć' | 'č' | 'ĉ' | 'ċ' => "c",
        'ď' | 'đ' => "d",
        'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ė' | 'ę' | 'ě' => "e",
        'ğ' | 'ĝ' | 'ġ' | 'ģ' => "g",
        'ì' | 'í' | 'î' | 'ï' | 'ī' | 'į' | 'ı' => "i",
        'ķ' => "k",
        'ł' | 'ľ' | 'ĺ' | 'ļ' => "l",
        'ñ' | 'ń' | 'ň' | 'ņ' => "n",
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ō' | 'ő' => "o",
        'œ' => "oe",
        'ř' | 'ŕ' => "r",
        'ś' | 'š' | 'ş' | 'ș' => "s",
        'ß' => "ss",
        'ť' | 'ţ' | 'ț' => "t",
        'ù' | 'ú' | 'û' | 'ü' | 'ū' | 'ů' | 'ű' | 'ų' => "u",
        'ý' | 'ÿ' => "y",
        'ž' | 'ź' | 'ż' => "z",
        _ => return None,
    })
}

/// The German spelling without umlauts (`ä` → `ae`), `None` if the word has none.
fn umlaut_spelling(word: &str) -> Option<String> {
    if !word.contains(['ä', 'ö', 'ü']) {
        return None;
    }
    let mut out = String::with_capacity(word.len() + 2);
    for c in word.chars() {
        match c {
            'ä' => out.push_str("ae"),
            'ö' => out.push_str("oe"),
            'ü' => out.push_str("ue"),
            c => match fold(c) {
                Some(f) => out.push_str(f),
                None => out.push(c),
            },
        }
    }
    Some(out)
}

fn folded(word: &str) -> String {
    let mut out = String::with_capacity(word.len());
    for c in word.chars() {
        match fold(c) {
            Some(f) => out.push_str(f),
            None => out.push(c),
        }
    }
    out
}

/// Han, kana, hangul: scripts written without spaces between words.
pub fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF      // hiragana, katakana
        | 0x3400..=0x4DBF    // CJK extension A
        | 0x4E00..=0x9FFF    // CJK unified ideographs
        | 0xAC00..=0xD7AF    // hangul syllables
        | 0xF900..=0xFAFF    // compatibility ideographs
        | 0x20000..=0x2FFFF) // extensions B…
}

/// A piece of text: a word (letters and digits) or a run of CJK characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Run {
    Word(String),
    Cjk(Vec<char>),
}

/// Splits lower-cased text into runs. A full-width digit or letter counts as its ASCII self.
pub fn runs(text: &str) -> Vec<Run> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut cjk: Vec<char> = Vec::new();
    let flush_word = |w: &mut String, out: &mut Vec<Run>| {
        if !w.is_empty() {
            out.push(Run::Word(std::mem::take(w)));
        }
    };
    let flush_cjk = |c: &mut Vec<char>, out: &mut Vec<Run>| {
        if !c.is_empty() {
            out.push(Run::Cjk(std::mem::take(c)));
        }
    };
    for c in text.chars() {
        // Full-width forms (０-９, Ａ-Ｚ) as typed on a Chinese keyboard.
        let c = match c as u32 {
            0xFF10..=0xFF19 | 0xFF21..=0xFF3A | 0xFF41..=0xFF5A => {
                char::from_u32(c as u32 - 0xFEE0).unwrap_or(c)
            }
            _ => c,
        };
        if is_cjk(c) {
            flush_word(&mut word, &mut out);
            cjk.push(c);
        } else if c.is_alphanumeric() {
            flush_cjk(&mut cjk, &mut out);
            for l in c.to_lowercase() {
                word.push(l);
            }
        } else {
            flush_cjk(&mut cjk, &mut out);
            // "Landstr." is "Landstrasse"; "Str." alone too.
            if c == '.' && word.ends_with("str") {
                word.push_str("asse");
            }
            flush_word(&mut word, &mut out);
        }
    }
    flush_word(&mut word, &mut out);
    flush_cjk(&mut cjk, &mut out);
    out
}

/// The tokens a record is found by: each word folded (and its umlaut spelling as well), and
/// each CJK run's bigrams (a lone character as itself). Deduplicated, in first-seen order.
pub fn index_tokens(text: &str) -> Vec<Token> {
    fn push(t: String, out: &mut Vec<Token>) {
        if !out.contains(&t) {
            out.push(t);
        }
    }
    let mut out: Vec<Token> = Vec::new();
    for run in runs(text) {
        match run {
            Run::Word(w) => {
                if let Some(alt) = umlaut_spelling(&w) {
                    push(alt, &mut out);
                }
                push(folded(&w), &mut out);
            }
            Run::Cjk(cs) => {
                for t in cjk_grams(&cs) {
                    push(t, &mut out);
                }
            }
        }
    }
    out
}

fn cjk_grams(cs: &[char]) -> Vec<String> {
    if cs.len() == 1 {
        return vec![cs[0].to_string()];
    }
    cs.windows(2).map(|w| w.iter().collect()).collect()
}

/// One token of a query and how it may match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryToken {
    pub text: String,
    /// A Latin word that may be misspelt (CJK grams and numbers must match exactly).
    pub fuzzy: bool,
    /// The last word typed, still being typed: matches words it begins.
    pub prefix: bool,
}

/// Tokens of what a dispatcher typed. The last word counts as a prefix unless the text ends in
/// a space or punctuation (results as you type).
pub fn query_tokens(text: &str) -> Vec<QueryToken> {
    let runs = runs(text);
    let open_end = text
        .chars()
        .last()
        .is_some_and(|c| c.is_alphanumeric() && !is_cjk(c));
    let n = runs.len();
    let mut out: Vec<QueryToken> = Vec::new();
    for (i, run) in runs.into_iter().enumerate() {
        match run {
            Run::Word(w) => {
                let f = folded(&w);
                let numeric = f.chars().any(|c| c.is_ascii_digit());
                let t = QueryToken {
                    fuzzy: !numeric,
                    prefix: open_end && i + 1 == n,
                    text: f,
                };
                if !out.contains(&t) {
                    out.push(t);
                }
            }
            Run::Cjk(cs) => {
                for g in cjk_grams(&cs) {
                    let t = QueryToken {
                        text: g,
                        fuzzy: false,
                        prefix: false,
                    };
                    if !out.contains(&t) {
                        out.push(t);
                    }
                }
            }
        }
    }
    out
}

/// Optimal-string-alignment distance (Levenshtein with adjacent transpositions), on chars,
/// giving up (returning `max + 1`) once the distance exceeds `max`.
pub fn edit_distance(a: &str, b: &str, max: usize) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    if a.len().abs_diff(b.len()) > max {
        return max + 1;
    }
    let w = b.len() + 1;
    let mut prev2 = vec![0usize; w];
    let mut prev: Vec<usize> = (0..w).collect();
    let mut cur = vec![0usize; w];
    for i in 1..=a.len() {
        cur[0] = i;
        let mut row_min = cur[0];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(prev2[j - 2] + 1);
            }
            cur[j] = v;
            row_min = row_min.min(v);
        }
        if row_min > max {
            return max + 1;
        }
        std::mem::swap(&mut prev2, &mut prev);
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()].min(max + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latin_words_fold_and_keep_the_umlaut_spelling() {
        assert_eq!(
            index_tokens("Äulestrasse 5, 9490 Vaduz"),
            vec!["aeulestrasse", "aulestrasse", "5", "9490", "vaduz"]
        );
        assert_eq!(index_tokens("Straße"), vec!["strasse"]);
        assert_eq!(index_tokens("Landstr. 12a"), vec!["landstrasse", "12a"]);
        assert_eq!(
            index_tokens("Café Müller"),
            vec!["cafe", "mueller", "muller"]
        );
    }

    #[test]
    fn cjk_runs_become_bigrams_and_numbers_stay_words() {
        assert_eq!(
            index_tokens("柯城区人民路12号"),
            vec!["柯城", "城区", "区人", "人民", "民路", "12", "号"]
        );
        // Full-width digits as typed on a Chinese keyboard.
        assert_eq!(index_tokens("１２号"), vec!["12", "号"]);
    }

    #[test]
    fn the_last_word_is_a_prefix_while_typed() {
        let q = query_tokens("Aeulestr");
        assert!(q[0].prefix && q[0].fuzzy);
        let q = query_tokens("Aeulestr ");
        assert!(!q[0].prefix);
        let q = query_tokens("landstrasse 12");
        assert!(!q[1].fuzzy && q[1].prefix);
    }

    #[test]
    fn edit_distance_counts_transpositions_once() {
        assert_eq!(edit_distance("vaduz", "vadzu", 2), 1);
        assert_eq!(edit_distance("vaduz", "vaduz", 2), 0);
        assert_eq!(edit_distance("schaan", "schan", 2), 1);
        assert_eq!(edit_distance("abc", "xyz", 1), 2);
        assert_eq!(edit_distance("landstrasse", "lantstrase", 2), 2);
    }
}
