//! Likely duplicates (重复上报): a new report near an open case of the last days, saying much
//! the same thing. Chinese text is segmented into words with jieba before comparing, so that
//! "路灯不亮" and "这里的路灯坏了不亮" share 路灯 and 不亮 rather than single characters.

use std::collections::HashSet;
use std::sync::OnceLock;

use jieba_rs::Jieba;

use crate::case::{Case, Location};
use crate::geo::distance_m;

/// Defaults: within 50 metres (as FixMyStreet suggests), reported in the last 7 days.
pub const RADIUS_M: f64 = 50.0;
pub const WINDOW_DAYS: i64 = 7;
/// Word overlap (Jaccard) at which two reports say the same thing.
pub const MIN_SIMILARITY: f64 = 0.2;

/// Words of grassroots governance that jieba's general dictionary splits badly.
const DOMAIN_WORDS: &[&str] = &[
    "路灯",
    "井盖",
    "护栏",
    "占道经营",
    "流动摊点",
    "垃圾分类",
    "僵尸车",
    "楼道",
    "堆物",
    "噪音",
    "扰民",
    "违章搭建",
    "积水",
    "焚烧",
    "流浪狗",
    "不亮",
    "破损",
    "漏水",
    "停车",
    "充电",
    "电动车",
    "飞线",
    "网格员",
    "物业",
    "化粪池",
    "窨井",
    "下水道",
    "垃圾桶",
    "油烟",
];

fn jieba() -> &'static Jieba {
    static J: OnceLock<Jieba> = OnceLock::new();
    J.get_or_init(|| {
        let mut j = Jieba::new();
        for w in DOMAIN_WORDS {
            j.add_word(w, Some(100_000), None);
        }
        j
    })
}

const STOP: &[&str] = &[
    "的", "了", "在", "是", "有", "和", "就", "都", "也", "很", "这", "那", "这里", "那里", "我们",
    "我", "你", "他", "她", "请", "一个", "没有", "已经", "还", "又", "把", "被", "给", "吗", "呢",
    "啊", "吧", "着", "过", "到", "对", "说", "要", "会", "能", "一下",
];

/// The words of a text, without punctuation and stop words. Words of three or more
/// characters also contribute their two-character parts, so that a word the dictionary
/// glued together still meets its neighbours (灯不亮 → 灯不, 不亮).
pub fn words(text: &str) -> HashSet<String> {
    let mut out = HashSet::new();
    for w in jieba().cut_for_search(text, true) {
        let w = w.trim().to_lowercase();
        if w.is_empty() || !w.chars().any(char::is_alphanumeric) || STOP.contains(&w.as_str()) {
            continue;
        }
        let chars: Vec<char> = w.chars().collect();
        if chars.len() >= 3 && chars.iter().all(|c| !c.is_ascii()) {
            for pair in chars.windows(2) {
                out.insert(pair.iter().collect::<String>());
            }
        }
        out.insert(w);
    }
    out
}

/// Jaccard similarity of two texts' words, 0..=1.
pub fn similarity(a: &str, b: &str) -> f64 {
    let (wa, wb) = (words(a), words(b));
    if wa.is_empty() || wb.is_empty() {
        return 0.0;
    }
    let inter = wa.intersection(&wb).count() as f64;
    let union = (wa.len() + wb.len()) as f64 - inter;
    inter / union
}

#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub case_id: i64,
    pub number: String,
    pub distance_m: f64,
    pub similarity: f64,
}

/// Ranks open cases near `at` as likely duplicates of a report saying `text`.
pub fn rank(text: &str, at: Location, nearby: &[Case]) -> Vec<Candidate> {
    let mut out: Vec<Candidate> = nearby
        .iter()
        .filter(|c| c.status.is_open())
        .filter_map(|c| {
            let d = distance_m(at, c.location?);
            if d > RADIUS_M {
                return None;
            }
            let s = similarity(text, &format!("{} {}", c.title, c.description));
            (s >= MIN_SIMILARITY).then(|| Candidate {
                case_id: c.id,
                number: c.number.clone(),
                distance_m: (d * 10.0).round() / 10.0,
                similarity: (s * 100.0).round() / 100.0,
            })
        })
        .collect();
    out.sort_by(|a, b| {
        b.similarity
            .total_cmp(&a.similarity)
            .then(a.distance_m.total_cmp(&b.distance_m))
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chinese_words_not_characters() {
        let w = words("小区门口的路灯不亮了,晚上很黑");
        assert!(w.contains("路灯"), "{w:?}");
        assert!(!w.contains("的"));
        assert!(similarity("路灯不亮", "这里的路灯坏了不亮") > 0.3);
        assert!(similarity("路灯不亮", "楼道堆放杂物") < 0.1);
        assert_eq!(similarity("", "路灯"), 0.0);
    }
}
