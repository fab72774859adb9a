"""Notifications: the outbox's events turned into messages for people (email) and the group robots Chinese
teams use (WeCom, DingTalk, Feishu), each rendered once in its recipient's language and sent until it is
delivered. A message is a row before it is a send attempt, so a restart or an SMTP outage loses nothing."""
