/**
 * The most common passwords of 10+ characters (shorter ones already fail the length rule),
 * from public breach-frequency lists. Compared lower-cased.
 */
const COMMON = new Set(
  [
    "1234567890",
    "0123456789",
    "0987654321",
    "9876543210",
    "1234567891",
    "12345678910",
    "1111111111",
    "0000000000",
    "111111111111",
    "000000000000",
    "123123123123",
    "121212121212",
    "123456123456",
    "1234512345",
    "123456789a",
    "a123456789",
    "qwertyuiop",
    "qwertyuiop1",
    "qwerty1234",
    "qwerty12345",
    "1234qwerty",
    "1q2w3e4r5t",
    "1q2w3e4r5t6y",
    "q1w2e3r4t5",
    "zaq12wsxcde",
    "1qaz2wsx3edc",
    "qazwsxedcrfv",
    "asdfghjkl1",
    "asdfghjkl;",
    "zxcvbnm123",
    "abcdefghij",
    "aaaaaaaaaa",
    "password12",
    "password123",
    "password1234",
    "passwordpassword",
    "passw0rd12",
    "p@ssw0rd123",
    "p@ssword123",
    "password!1",
    "password1!",
    "changeme123",
    "iloveyou12",
    "iloveyou123",
    "football12",
    "baseball12",
    "letmein123",
    "letmeinnow",
    "welcome123",
    "welcome1234",
    "trustno1234",
    "monkey1234",
    "dragon1234",
    "sunshine12",
    "princess12",
    "superman12",
    "starwars12",
    "computer12",
    "michael123",
    "shadow1234",
    "master1234",
    "jennifer12",
    "administrator",
    "administrator1",
    "admin12345",
    "adminadmin",
    "rootroot12",
    "testtest12",
    "test123456",
    "qwertyqwerty",
    "football123",
    "1234567890a",
    "abc1234567",
    "abcd123456",
    "abc123456789",
    "loveyou123",
  ].map((p) => p.toLowerCase()),
);

export const PASSWORD_MIN = 10;
export const PASSWORD_MAX = 256;

/** null when acceptable, else the reason. */
export function passwordProblem(password: string, email?: string): string | null {
  if (password.length < PASSWORD_MIN) return `must be at least ${PASSWORD_MIN} characters`;
  if (password.length > PASSWORD_MAX) return `must be at most ${PASSWORD_MAX} characters`;
  const lower = password.toLowerCase();
  if (COMMON.has(lower)) return "is one of the most common passwords";
  if (new Set(lower).size < 3) return "repeats too few distinct characters";
  if (email && lower === email.toLowerCase()) return "must not be your email address";
  return null;
}
