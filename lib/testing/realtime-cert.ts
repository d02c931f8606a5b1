/**
 * A self-signed certificate for localhost / 127.0.0.1 (valid to 2126), for the fake Realtime
 * server only: the SDK connects with wss:// whatever the baseURL says. Never use it elsewhere.
 */
export const REALTIME_TEST_CERT = `-----BEGIN CERTIFICATE-----
MIIBmjCCAUGgAwIBAgIUN4L8xxSWwpTwNZVxrLxSidhGb4owCgYIKoZIzj0EAwIw
FDESMBAGA1UEAwwJbG9jYWxob3N0MCAXDTI2MTEyODA1MzQxM1oYDzIxMjYxMTA0
MDUzNDEzWjAUMRIwEAYDVQQDDAlsb2NhbGhvc3QwWTATBgcqhkjOPQIBBggqhkjO
PQMBBwNCAATzMQfRYTUBt0RkcuGUqu1/1v435Zuypk/XjPt9JhZiWsfgZnyID4xo
G5glIpJyxeCsNzSlnDwqZ7wJKGf7JLx5o28wbTAdBgNVHQ4EFgQUcejKgAPP0avk
RFxg8twc3PW8JT0wHwYDVR0jBBgwFoAUcejKgAPP0avkRFxg8twc3PW8JT0wDwYD
VR0TAQH/BAUwAwEB/zAaBgNVHREEEzARgglsb2NhbGhvc3SHBH8AAAEwCgYIKoZI
zj0EAwIDRwAwRAIgWqFqIsZ6NVW4WUk+m40A2jV24Fel3oBNlQkW/XP/i38CIEx9
NK4sadu4cpHP/1IfC3QplWkgFEICMzphB1uiPxzV
-----END CERTIFICATE-----
`;

export const REALTIME_TEST_KEY = `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgv7xsi5ebTw/nF/Ac
k0SzdD95/tvrmLvxBb92BSgsmbehRANCAATzMQfRYTUBt0RkcuGUqu1/1v435Zuy
pk/XjPt9JhZiWsfgZnyID4xoG5glIpJyxeCsNzSlnDwqZ7wJKGf7JLx5
-----END PRIVATE KEY-----
`;
