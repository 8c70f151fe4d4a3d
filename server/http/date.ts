// The Date header's value, as every response carries it: made once a second, not per
// response (what Node's compatibility layer does for each costs a call's CPU: node --cpu-prof).

let dated = { second: -1, value: "" };

export function httpDate(): string {
  const now = Date.now();
  const second = Math.floor(now / 1000);
  if (second !== dated.second) dated = { second, value: new Date(now).toUTCString() };
  return dated.value;
}
