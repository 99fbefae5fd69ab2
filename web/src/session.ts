// The dashboard's API key, kept for this browser tab only.

const SLOT = "ipintel.key";

export function storedKey(): string | null {
  try {
    return sessionStorage.getItem(SLOT);
  } catch {
    return null;
  }
}

export function storeKey(key: string | null): void {
  try {
    if (key) sessionStorage.setItem(SLOT, key);
    else sessionStorage.removeItem(SLOT);
  } catch {
    // Storage refused (private mode): the key lives until the page closes.
  }
}
