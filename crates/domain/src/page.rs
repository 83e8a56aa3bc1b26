//! Pagination: what a client asks for and what a list answers.

/// Largest page size a client may ask for.
pub const SIZE_MAX: u32 = 100;
/// Page size when none is given.
pub const SIZE_DEFAULT: u32 = 50;

/// A validated page request: `page >= 1`, `1 <= size <= 100`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub page: u64,
    pub size: u32,
    /// Newest first instead of oldest first.
    pub reverse: bool,
}

impl Default for PageRequest {
    fn default() -> Self {
        PageRequest {
            page: 1,
            size: SIZE_DEFAULT,
            reverse: false,
        }
    }
}

impl PageRequest {
    /// Rows to skip, or `None` when the page starts beyond any table this side of `i64::MAX`.
    pub fn offset(&self) -> Option<i64> {
        let off = (self.page - 1).checked_mul(u64::from(self.size))?;
        i64::try_from(off).ok()
    }
    pub fn limit(&self) -> i64 {
        i64::from(self.size)
    }
}

/// One page of a list.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: u64,
    pub page: u64,
    pub size: u32,
    pub pages: u64,
}

impl<T> Page<T> {
    pub fn new(items: Vec<T>, total: u64, req: PageRequest) -> Self {
        let pages = total.div_ceil(u64::from(req.size));
        Page {
            items,
            total,
            page: req.page,
            size: req.size,
            pages,
        }
    }
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            total: self.total,
            page: self.page,
            size: self.size,
            pages: self.pages,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_round_up_and_are_zero_when_empty() {
        let req = PageRequest {
            page: 1,
            size: 50,
            reverse: false,
        };
        assert_eq!(Page::<()>::new(vec![], 0, req).pages, 0);
        assert_eq!(Page::<()>::new(vec![], 50, req).pages, 1);
        assert_eq!(Page::<()>::new(vec![], 51, req).pages, 2);
    }

    #[test]
    fn huge_pages_have_no_offset() {
        let req = PageRequest {
            page: i64::MAX as u64,
            size: 100,
            reverse: false,
        };
        assert_eq!(req.offset(), None);
        assert_eq!(PageRequest::default().offset(), Some(0));
    }
}
