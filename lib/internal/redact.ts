/** Hides the credentials of a redis:// (or any scheme://user:pass@) URL: for logs, events, status(). */
export function redactUrl(url: string): string {
  return url.replace(/\/\/([^@/\s]*)@/, '//***@');
}

/** Hides the credentials of every URL inside a text (an error message that quotes one). */
export function redactUrls(text: string): string {
  return text.replace(/\/\/[^@/\s]*@/g, '//***@');
}
