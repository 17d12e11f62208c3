#!/usr/bin/env python3
"""A chat of N turns through the HTTP API (POST /v1/chat/completions, greedy):
each turn sends the whole conversation so far, the earlier answers as
assistant messages. Prints the answers as JSON (one list) for comparison.
Usage: http_chat.py PORT TURNS"""
import json
import sys
import urllib.request

port, turns = int(sys.argv[1]), int(sys.argv[2])
messages = [{"role": "system", "content": "You are a careful assistant. Answer each question briefly."}]
answers = []
for turn in range(turns):
    messages.append({"role": "user", "content": f"Question {turn + 1}: what do the river and the birds do?"})
    body = json.dumps({"messages": messages, "max_tokens": 6, "temperature": 0}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions", data=body,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as response:
        reply = json.load(response)
    answer = reply["choices"][0]["message"]["content"]
    answers.append(answer)
    messages.append({"role": "assistant", "content": answer})
print(json.dumps(answers))
