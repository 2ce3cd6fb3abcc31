//! Masking of personal data (PIPL art. 51). Full values leave the server only through an
//! explicit, logged reveal.

/// `13812345678` → `138****5678`: keep the first 3 and last 4 digits.
pub fn mask_phone(phone: &str) -> String {
    let chars: Vec<char> = phone.chars().collect();
    if chars.len() <= 7 {
        let keep = chars.len().saturating_sub(4).min(2);
        let stars = chars.len() - keep;
        return chars[..keep].iter().collect::<String>() + &"*".repeat(stars);
    }
    let head: String = chars[..3].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}****{tail}")
}

/// `张三` → `张*`, `欧阳娜娜` → `欧***`, `Li Lei` → `L*****`: keep the family name's first
/// character only.
pub fn mask_name(name: &str) -> String {
    let mut chars = name.chars();
    match chars.next() {
        None => String::new(),
        Some(first) => {
            let rest = chars.count().max(1);
            format!("{first}{}", "*".repeat(rest))
        }
    }
}

/// The last four digits, which a resident gives to track a case.
pub fn last4(phone: &str) -> String {
    let digits: Vec<char> = phone.chars().filter(|c| c.is_ascii_digit()).collect();
    digits[digits.len().saturating_sub(4)..].iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks() {
        assert_eq!(mask_phone("13812345678"), "138****5678");
        assert_eq!(mask_phone("057985123456"), "057****3456");
        assert_eq!(mask_phone("12345"), "1****");
        assert_eq!(mask_name("张三"), "张*");
        assert_eq!(mask_name("欧阳娜娜"), "欧***");
        assert_eq!(mask_name("王"), "王*");
        assert_eq!(last4("138-1234-5678"), "5678");
    }
}
