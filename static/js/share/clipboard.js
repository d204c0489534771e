// Copying a value: the Clipboard API where the page may use it, else the browser's copy command on
// a selection, else the value left selected for the person to copy.

// `selectable()` gives the element showing the value, for the fallbacks only (a masked password is
// shown first). Answers whether the value reached the clipboard.
export async function copyValue(value, selectable) {
  try {
    await navigator.clipboard.writeText(value);
    return true;
  } catch {
    const element = selectable ? selectable() : null;
    if (!element) return false;
    const range = document.createRange();
    range.selectNodeContents(element);
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    let copied = false;
    try {
      copied = document.execCommand("copy");
    } catch {
      copied = false;
    }
    if (copied) selection.removeAllRanges();
    return copied;
  }
}
